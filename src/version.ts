/** The meshd version, shown by `--version` and written into nodeInfo records. */
export const MESHD_VERSION = '0.1.0';
