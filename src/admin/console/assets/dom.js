// @ts-check
/**
 * The console builds every element with `el` and every piece of text as a text node: nothing it
 * shows is ever parsed as markup (the page's Trusted Types policy would refuse innerHTML anyway).
 */

/**
 * @typedef {string | number | Node | null | undefined | false} Child
 * @typedef {Record<string, string | boolean | number | undefined | ((event: Event) => void)>} Attrs
 */

/**
 * An element with attributes (`on…` keys become listeners; boolean true sets an empty attribute,
 * false or undefined leaves it out) and children (strings become text nodes).
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Attrs} [attrs]
 * @param {...(Child | Child[])} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag)
  for (const [name, value] of Object.entries(attrs)) {
    if (typeof value === 'function') node.addEventListener(name.slice(2), value)
    else if (value === true) node.setAttribute(name, '')
    else if (value !== false && value !== undefined) node.setAttribute(name, String(value))
  }
  append(node, children)
  return node
}

/**
 * @param {Node} node
 * @param {(Child | Child[])[]} children
 */
export function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue
    node.appendChild(typeof child === 'string' || typeof child === 'number' ? document.createTextNode(String(child)) : child)
  }
}

/**
 * Replaces a node's children.
 * @param {Node} node
 * @param {...(Child | Child[])} children
 */
export function replace(node, ...children) {
  while (node.firstChild !== null) node.removeChild(node.firstChild)
  append(node, children)
}

/**
 * A labelled input in a `<label>` wrapper.
 * @param {string} label
 * @param {Attrs} attrs
 */
export function field(label, attrs) {
  return el('label', { class: 'field' }, el('span', {}, label), el('input', attrs))
}

/**
 * A table whose cells are text (or nodes the page built).
 * @param {string} caption
 * @param {string[]} headings
 * @param {(Child | Child[])[][]} rows
 */
export function table(caption, headings, rows) {
  return el('div', { class: 'scroll' }, el('table', {},
    el('caption', {}, caption),
    el('thead', {}, el('tr', {}, headings.map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, rows.length === 0
      ? el('tr', {}, el('td', { colspan: headings.length }, 'None.'))
      : rows.map((cells) => el('tr', {}, cells.map((c, i) => el('td', { 'data-label': headings[i] }, c))))),
  ))
}

/**
 * The value of a named control of a form.
 * @param {HTMLFormElement} form
 * @param {string} name
 */
export function formValue(form, name) {
  const control = form.elements.namedItem(name)
  return control instanceof HTMLInputElement || control instanceof HTMLTextAreaElement || control instanceof HTMLSelectElement ? control.value.trim() : ''
}
