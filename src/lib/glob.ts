/** Minimal glob: `**` any path, `*` within one segment, `?` one char. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*') {
      if (glob[i + 1] === '*') {
        i++;
        if (glob[i + 1] === '/') { i++; re += '(?:.*/)?'; } else re += '.*';
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

const compiled = new Map<string, RegExp>();

/** Compiled once per glob (this runs on every request). */
function cachedGlob(g: string): RegExp {
  let re = compiled.get(g);
  if (!re) {
    if (compiled.size > 10_000) compiled.clear();
    re = globToRegExp(g);
    compiled.set(g, re);
  }
  return re;
}

export function matchesAny(path: string, globs: readonly string[]): boolean {
  return globs.some((g) => cachedGlob(g).test(path));
}
