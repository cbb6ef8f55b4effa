/** Dotted paths of the fields a reload (or a pushed policy) may change; everything else must stay as it is (reload.ts). */
export const RELOADABLE: readonly string[] = ['connectors', 'tunnels', 'limits.max_body_inspect_bytes', 'limits.approval_body_bytes', 'limits.approvals_per_session']
