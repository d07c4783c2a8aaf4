// The fixed ports `releng serve` uses by default, so URLs printed after a local run keep working.
export const defaultServePorts = { s3: 4566, registry: 5000 } as const;
