// @ts-check
/**
 * Charts drawn by hand as SVG with DOM calls: no library, and no inline style (the page's CSP
 * refuses it), so colours come from classes in console.css and geometry from SVG attributes. A
 * chart is a picture for the eye only: the numbers it draws are always beside it as text (a
 * table), which is what a screen reader reads.
 */
import { el } from './dom.js'

const SVG = 'http://www.w3.org/2000/svg'

/**
 * An SVG element with attributes and children (strings become text nodes).
 * @param {string} tag
 * @param {Record<string, string | number>} [attrs]
 * @param {...(SVGElement | string)} children
 * @returns {SVGElement}
 */
export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag)
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value))
  for (const child of children) node.appendChild(typeof child === 'string' ? document.createTextNode(child) : child)
  return /** @type {SVGElement} */ (node)
}

/**
 * A column per bucket, each a stack of series (bottom first), with the highest total marked on
 * the y axis and a few bucket labels on the x axis; each column's <title> names its numbers.
 * @param {{ label: string, values: number[] }[]} columns
 * @param {{ name: string, class: string }[]} series
 * @param {string} description what the chart shows, for the image's accessible name
 * @param {number} width in CSS pixels: drawn at the size it is shown, its text stays legible
 */
export function columnChart(columns, series, description, width) {
  const height = 180
  const left = 36
  const right = 20
  const bottom = 22
  const top = 10
  const plot = height - bottom - top
  const max = Math.max(1, ...columns.map((c) => c.values.reduce((a, b) => a + b, 0)))
  const step = (width - left - right) / Math.max(1, columns.length)
  const labelEvery = Math.max(1, Math.ceil(columns.length / Math.max(2, Math.floor((width - left - right) / 60))))
  const chart = svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', 'aria-label': description, focusable: 'false' })
  chart.append(
    svg('line', { class: 'axis', x1: left, x2: width - right, y1: top + plot, y2: top + plot }),
    svg('line', { class: 'grid', x1: left, x2: width - right, y1: top, y2: top }),
    svg('text', { class: 'tick', x: left - 4, y: top + 4, 'text-anchor': 'end' }, String(max)),
    svg('text', { class: 'tick', x: left - 4, y: top + plot, 'text-anchor': 'end' }, '0'),
  )
  columns.forEach((column, i) => {
    const x = left + i * step
    const group = svg('g', {}, svg('title', {}, `${column.label}: ${series.map((s, j) => `${column.values[j] ?? 0} ${s.name}`).join(', ')}`))
    let base = top + plot
    series.forEach((s, j) => {
      const h = ((column.values[j] ?? 0) / max) * plot
      if (h <= 0) return
      base -= h
      group.append(svg('rect', { class: s.class, x: (x + step * 0.12).toFixed(1), y: base.toFixed(1), width: (step * 0.76).toFixed(1), height: h.toFixed(1) }))
    })
    chart.append(group)
    if (i % labelEvery === 0) chart.append(svg('text', { class: 'tick', x: (x + step / 2).toFixed(1), y: height - 6, 'text-anchor': 'middle' }, column.label))
  })
  return chart
}

/**
 * A horizontal bar for a table cell: `parts` side by side (e.g. allowed then refused), scaled so
 * that `max` fills the cell. Hidden from screen readers: the cells beside it hold the numbers.
 * @param {{ value: number, class: string }[]} parts
 * @param {number} max
 */
export function barCell(parts, max) {
  const bar = svg('svg', { viewBox: '0 0 100 10', preserveAspectRatio: 'none', class: 'bar', 'aria-hidden': 'true', focusable: 'false' })
  let x = 0
  for (const part of parts) {
    const w = max > 0 ? (part.value / max) * 100 : 0
    if (w > 0) bar.append(svg('rect', { class: part.class, x: x.toFixed(2), y: 0, width: w.toFixed(2), height: 10 }))
    x += w
  }
  return el('span', { class: 'bar-cell' }, bar)
}

/**
 * A legend: a swatch and a name per series.
 * @param {{ name: string, class: string }[]} series
 */
export function legend(series) {
  /** @param {string} cls */
  const swatch = (cls) => svg('svg', { viewBox: '0 0 10 10', class: 'swatch', 'aria-hidden': 'true', focusable: 'false' }, svg('rect', { class: cls, x: 0, y: 0, width: 10, height: 10 }))
  return el('ul', { class: 'legend' }, series.map((s) => el('li', {}, swatch(s.class), s.name)))
}
