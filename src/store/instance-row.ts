/** InstanceReport.keyIds from the `key_ids` column (space-separated key ids; '' for none), the same on both stores. */
export function keyIdsOf(column: unknown): string[] {
  return String(column ?? '').split(' ').filter((id) => id !== '')
}
