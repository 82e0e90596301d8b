import { pgpOptions } from '../../lib/pgp.js';

/** Options of an rpm repo. */
export const RPM_OPTIONS = pgpOptions('repodata/repomd.xml (repomd.xml.asc) of a local/virtual repo');
