/** Keyset pagination: pages of `size` rows after the last key seen, so no statement stays open across awaits. */
export async function* keysetPages<R>(page: (after: string, limit: number) => R[] | Promise<R[]>, keyOf: (row: R) => string, size = 500): AsyncIterable<R> {
  let after = '';
  for (;;) {
    const rows = await page(after, size);
    yield* rows;
    if (rows.length < size) return;
    after = keyOf(rows[rows.length - 1]);
  }
}
