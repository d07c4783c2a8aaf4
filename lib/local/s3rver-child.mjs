// Runs s3rver in its own process: s3rver 3.7.1 needs --openssl-legacy-provider on Node 20 for
// paginated listings, and a child keeps that flag out of releng itself. Prints {"port":N} once
// listening; exits when stdin closes (so it never outlives its parent).
// argv: DIR BUCKETS(comma-separated, may be empty) [REQUEST_LOG_FILE]
import { appendFileSync, mkdirSync } from 'node:fs';
import S3rver from 's3rver';

const [dir, buckets = '', requestLog] = process.argv.slice(2);
mkdirSync(dir, { recursive: true });
const server = new S3rver({
  address: '127.0.0.1',
  port: Number(process.env.RELENG_S3_PORT ?? 0),
  directory: dir,
  silent: true,
  configureBuckets: buckets.split(',').filter(Boolean).map((name) => ({ name })),
});
const addr = await server.run();
if (requestLog) {
  // One line per request: lets tests count PUTs at the server, not in the client under test.
  server.httpServer.on('request', (req) => appendFileSync(requestLog, `${req.method} ${req.url}\n`));
}
process.stdout.write(JSON.stringify({ port: addr.port }) + '\n');
process.stdin.resume();
process.stdin.on('end', async () => { await server.close(); process.exit(0); });
process.on('SIGTERM', async () => { await server.close(); process.exit(0); });
