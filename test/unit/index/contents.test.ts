// Contents-ARCH (lib/index/contents.ts): the files of a real .deb as apt-ftparchive lists them, the
// text apt-file parses (path, whitespace, packages), and one package's lines replaced.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { filesOf, filesOfDeb, gzipContents, parseContents, renderContents, setPackageFiles } from '../../../lib/index/contents.ts';
import { makeDeb } from '../../helpers/apt.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'releng-contents-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('Contents', () => {
  it('lists the files of a .deb (not its directories), spaces in names kept', async () => {
    const deb = makeDeb(dir, { pkg: 'hello', version: '1.0', arch: 'amd64', files: { 'usr/share/hello/a file.txt': 'x', 'usr/share/doc/hello/README': 'y' } });
    expect((await filesOfDeb(deb)).sort()).toEqual(['usr/bin/hello', 'usr/share/doc/hello/README', 'usr/share/hello/a file.txt']);
  });

  it('renders sorted lines that parse back; a shared path lists both packages; replacing one package keeps the other', () => {
    const c = parseContents(Buffer.from(''));
    setPackageFiles(c, 'hello', ['usr/bin/hello', 'usr/share/doc/common']);
    setPackageFiles(c, 'hello-doc', ['usr/share/doc/common', 'usr/share/doc/hello-doc/manual with space.txt']);
    const text = renderContents(c);
    expect(text.split('\n')[0]).toMatch(/^usr\/bin\/hello\s+hello$/);
    expect(text).toMatch(/^usr\/share\/doc\/common\s+hello,hello-doc$/m);
    expect(parseContents(gzipContents(c))).toEqual(c);
    expect(parseContents(Buffer.from('usr/bin/x    admin/foo,net/bar\n')).get('usr/bin/x')).toEqual(new Set(['foo', 'bar']));
    setPackageFiles(c, 'hello', []);
    expect(filesOf(c, 'hello')).toEqual([]);
    expect(renderContents(c)).toMatch(/^usr\/share\/doc\/common\s+hello-doc$/m);
    expect(gunzipSync(gzipContents(c)).toString()).toBe(renderContents(c));
    expect(gzipContents(c).equals(gzipContents(c))).toBe(true); // deterministic bytes: the same state is no new write
  });
});
