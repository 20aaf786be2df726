/**
 * Glob patterns for --include and --exclude, matched against paths relative to the dataset root
 * with '/' separators. Node 20 has no stable glob matcher, and the rules are few:
 *
 *   `*` any characters within one path segment    `**` any number of whole segments
 *   `?` one character within a segment             `[abc]`, `[a-z]`, `[!abc]` one of a set
 *   `{a,b}` either alternative                     a pattern without `/` matches the file name anywhere
 */

export function globToRegExp(pattern: string): RegExp {
  const source = pattern.includes('/') ? pattern.replace(/^\.?\//, '') : `**/${pattern}`
  return new RegExp(`^${translate(source)}$`)
}

export function matchesAny(path: string, patterns: readonly RegExp[]): boolean {
  return patterns.some((p) => p.test(path))
}

function translate(glob: string): string {
  let out = ''
  let i = 0
  let braces = 0
  while (i < glob.length) {
    const c = glob[i] as string
    if (c === '*') {
      if (glob[i + 1] === '*') {
        const atStart = i === 0 || glob[i - 1] === '/'
        const atEnd = i + 2 === glob.length || glob[i + 2] === '/'
        if (atStart && atEnd) {
          // `**/` matches zero or more whole segments; a trailing `**` matches everything below.
          if (i + 2 === glob.length) {
            out += '.*'
            i += 2
          } else {
            out += '(?:[^/]+/)*'
            i += 3
          }
          continue
        }
      }
      out += '[^/]*'
      i++
    } else if (c === '?') {
      out += '[^/]'
      i++
    } else if (c === '[') {
      const close = glob.indexOf(']', i + 2)
      if (close < 0) {
        out += '\\['
        i++
        continue
      }
      let set = glob.slice(i + 1, close)
      const negate = set.startsWith('!') || set.startsWith('^')
      if (negate) set = set.slice(1)
      out += `[${negate ? '^/' : ''}${set.replace(/\\/g, '\\\\').replace(/\]/g, '\\]')}]`
      i = close + 1
    } else if (c === '{') {
      braces++
      out += '(?:'
      i++
    } else if (c === '}' && braces > 0) {
      braces--
      out += ')'
      i++
    } else if (c === ',' && braces > 0) {
      out += '|'
      i++
    } else if (c === '\\' && i + 1 < glob.length) {
      out += escapeRegExp(glob[i + 1] as string)
      i += 2
    } else {
      out += escapeRegExp(c)
      i++
    }
  }
  while (braces-- > 0) out += ')'
  return out
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')
}
