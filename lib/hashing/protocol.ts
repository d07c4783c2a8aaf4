// Messages between lib/hashing/pool.ts and lib/hashing/worker.ts (types only).
import type { FileDigest, RawDigest } from './digester.ts';

export type Request =
  | { t: 'file'; id: number; file: string; md5: boolean }
  | { t: 'open'; id: number; decode?: 'zstd' | 'none' }
  | { t: 'chunks'; id: number; chunks: Uint8Array[] }
  | { t: 'end'; id: number }
  | { t: 'abort'; id: number }
  | { t: 'crash'; how: 'exit' | 'throw' };

export type Reply =
  | { t: 'done'; id: number; file: FileDigest }
  | { t: 'ack'; id: number; bytes: number }
  | { t: 'digest'; id: number; raw: RawDigest; decoded?: RawDigest; decodeError?: string }
  | { t: 'error'; id: number; error: { message: string; code?: string } };
