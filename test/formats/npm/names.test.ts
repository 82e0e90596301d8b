import { describe, expect, it } from 'vitest';
import { escapeName, isPackageName, parseRoute, tarballFileOf } from '../../../src/formats/npm/names.js';
import { hashesOf, wantsAbbreviated } from '../../../src/formats/npm/index-doc.js';

describe('npm routes and names', () => {
  it('parses packuments, tarballs, dist-tags and -rev paths, scoped names encoded or not', () => {
    expect(parseRoute('lodash')).toEqual({ kind: 'package', name: 'lodash' });
    for (const p of ['@acme%2fwidget', '@acme%2Fwidget', '@acme/widget', '%40acme%2fwidget']) expect(parseRoute(p)).toEqual({ kind: 'package', name: '@acme/widget' });
    expect(parseRoute('@acme/widget/-/widget-1.0.0.tgz')).toEqual({ kind: 'tarball', name: '@acme/widget', file: 'widget-1.0.0.tgz' });
    expect(parseRoute('lodash/-/lodash-1.0.0.tgz/-rev/3-abc')).toEqual({ kind: 'tarball', name: 'lodash', file: 'lodash-1.0.0.tgz', rev: '3-abc' });
    expect(parseRoute('lodash/-rev/3-abc')).toEqual({ kind: 'package', name: 'lodash', rev: '3-abc' });
    expect(parseRoute('lodash/4.17.21')).toEqual({ kind: 'version', name: 'lodash', spec: '4.17.21' });
    expect(parseRoute('-/package/@acme%2fwidget/dist-tags')).toEqual({ kind: 'dist-tags', name: '@acme/widget', tag: undefined });
    expect(parseRoute('-/package/lodash/dist-tags/beta')).toEqual({ kind: 'dist-tags', name: 'lodash', tag: 'beta' });
    expect(parseRoute('-/ping')).toEqual({ kind: 'ping' });
    expect(parseRoute('')).toBeNull();
    expect(parseRoute('@acme')).toBeNull();
  });

  it('refuses names and files that could act as paths', () => {
    for (const p of ['..', '..%2f..%2fetc', '.hidden', '@acme/..', '@../x', 'a%5cb', 'a%00b']) expect(() => parseRoute(p)).toThrow();
    for (const p of ['x/-/..', 'x/-/_packument.json', 'x/-/.tgz']) expect(() => parseRoute(p)).toThrow();
    expect(parseRoute('x/-/../../y.tgz')).toBeNull();
    expect(isPackageName('@scope/name')).toBe(true);
    expect(isPackageName('_private')).toBe(false);
    expect(isPackageName('a'.repeat(215))).toBe(false);
  });

  it('escapes scoped names and finds tarball files in URLs', () => {
    expect(escapeName('@acme/widget')).toBe('@acme%2Fwidget');
    expect(tarballFileOf('https://registry.npmjs.org/@acme/widget/-/widget-1.0.0.tgz')).toBe('widget-1.0.0.tgz');
    expect(tarballFileOf('widget-1.0.0.tgz')).toBe('widget-1.0.0.tgz');
    expect(tarballFileOf(undefined)).toBeNull();
  });

  it('reads integrity and shasum into hashes, and Accept into the abbreviated form', () => {
    const sha512 = Buffer.alloc(64, 7).toString('base64');
    expect(hashesOf({ integrity: `sha512-${sha512} sha1-${Buffer.alloc(20, 1).toString('base64')}`, shasum: 'ab'.repeat(20) })).toEqual({
      sha512: '07'.repeat(64), sha1: '01'.repeat(20),
    });
    expect(hashesOf({ shasum: 'AB'.repeat(20) })).toEqual({ sha1: 'ab'.repeat(20) });
    expect(wantsAbbreviated('application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*')).toBe(true);
    expect(wantsAbbreviated('application/json')).toBe(false);
    expect(wantsAbbreviated('application/vnd.npm.install-v1+json;q=0')).toBe(false);
    expect(wantsAbbreviated(undefined)).toBe(false);
  });
});
