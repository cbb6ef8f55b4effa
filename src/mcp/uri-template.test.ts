import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { templateCovered } from './uri-template.ts'

describe('templateCovered: a URI pattern matches every expansion of a URI template', () => {
  it('covers only when every expansion matches', () => {
    const cases: [string, string, boolean][] = [
      ['docs://*', 'docs://{name}', true],
      ['docs://*', 'docs://{+path}', false], // reserved expansion may hold a '/'
      ['docs://**', 'docs://{+path}', true],
      ['docs://*', 'docs://{/a,b}', false],
      ['docs://*', 'docs://{name}{?q,lang}', true],
      ['repo://acme/**', 'repo://acme/{repo}/issues', true],
      ['repo://acme/**', 'repo://{owner}/{repo}', false],
      ['repo://acme/*/issues', 'repo://acme/{repo}/issues', true],
      ['repo://acme/*/issues', 'repo://acme/{repo}/pulls', false],
      ['repo://acme/app', 'repo://acme/{repo}', false],
      ['repo://acme/app', 'repo://acme/app', true],
      ['repo://*/*', 'repo://{owner}/{repo}', true],
      ['repo://*', 'repo://{owner}/{repo}', false],
      ['file:///docs/*.md', 'file:///docs/{name}.md', true],
      ['file:///docs/*.md', 'file:///docs/{name}', false],
    ]
    for (const [pattern, template, covered] of cases) assert.equal(templateCovered(pattern, template), covered, `${pattern} vs ${template}`)
  })

  it('never covers a malformed template', () => {
    for (const template of ['docs://{name', 'docs://name}', 'docs://{}', 'docs://{a b}', 'docs://{%zz}', `docs://${'a'.repeat(3000)}`]) {
      assert.equal(templateCovered('**', template), false, template)
    }
  })
})
