/**
 * Splits a byte stream into pieces of at most `max` bytes (default 1 MiB),
 * so archives travel as RPC messages of a bounded size.
 */
export async function* rechunk(
  stream: AsyncIterable<Uint8Array>,
  max = 1024 * 1024,
): AsyncGenerator<Uint8Array> {
  for await (const chunk of stream) {
    for (let i = 0; i < chunk.length; i += max)
      yield chunk.subarray(i, Math.min(i + max, chunk.length));
  }
}
