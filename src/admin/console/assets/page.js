// @ts-check
/**
 * The types a page and the shell share (types only: nothing is imported from here at run time).
 * @typedef {{ id: string, name: string, role: 'admin' | 'operator' | 'auditor' | 'approver' }} Me
 * @typedef {{ me: Me, has: (route: string) => boolean, say: (text: string) => void, fail: (err: unknown) => void }} Ctx
 * A page fills `main` and may return a function that stops its timers and streams when another page is shown.
 * @typedef {(main: HTMLElement, ctx: Ctx) => (void | (() => void))} Page
 */
export {}
