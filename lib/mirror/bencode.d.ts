// Types of the `bencode` package (webtorrent/node-bencode 4, which ships none): the two calls releng makes.
declare module 'bencode' {
  type Bencodable = number | string | Uint8Array | Bencodable[] | { [key: string]: Bencodable | undefined };
  const bencode: {
    /** Canonical bencoding (dictionary keys sorted as raw strings, BEP 3). */
    encode(data: Bencodable): Uint8Array;
    /** Byte strings come back as Uint8Array unless an encoding is given. */
    decode(data: Uint8Array, encoding?: string): any;
    decode(data: Uint8Array, start?: number, end?: number, encoding?: string): any;
  };
  export default bencode;
}
