// A PostgreSQL for the DWN storage test: the cluster Debian's postgresql package created,
// started if it is down, with a test role allowed to create the per-run databases the test
// makes (and its own database), both created only if missing. Root only; Node built-ins only.
import { spawnSync } from 'node:child_process';

const ROLE = 'meshd_test';
const SQL = `DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${ROLE}') THEN
    CREATE ROLE ${ROLE} LOGIN CREATEDB PASSWORD '${ROLE}';
  END IF;
END $$;
SELECT 'CREATE DATABASE ${ROLE} OWNER ${ROLE}'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '${ROLE}')\\gexec
`;

/** The test database URL, or { reason } when there is no PostgreSQL to use here. */
export function ensureTestPostgres() {
  if (process.getuid?.() !== 0) return { reason: 'not root' };
  const ls = spawnSync('pg_lsclusters', ['--no-header'], { encoding: 'utf8' });
  if (ls.status !== 0) return { reason: 'PostgreSQL is not installed (Debian package postgresql)' };
  const [version, cluster, port, status] = (ls.stdout.trim().split('\n')[0] ?? '').split(/\s+/);
  if (!version || !cluster || !port) return { reason: 'no PostgreSQL cluster' };
  if (status !== 'online') {
    const r = spawnSync('pg_ctlcluster', [version, cluster, 'start'], { encoding: 'utf8' });
    if (r.status !== 0) return { reason: `cannot start PostgreSQL ${version}/${cluster}: ${r.stderr.trim()}` };
  }
  const r = spawnSync('runuser', ['-u', 'postgres', '--', 'psql', '-p', port, '-v', 'ON_ERROR_STOP=1', '-qX'], { input: SQL, encoding: 'utf8', cwd: '/' });
  if (r.status !== 0) return { reason: `cannot create the test role: ${r.stderr.trim()}` };
  return { url: `postgres://${ROLE}:${ROLE}@127.0.0.1:${port}/${ROLE}` };
}
