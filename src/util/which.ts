/** Is `bin` an executable on PATH? (Used to explain what a machine is missing.) */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

export function onPath(bin: string, path = process.env.PATH ?? ''): boolean {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, bin), constants.X_OK);
      return true;
    } catch {
      // not here
    }
  }
  return false;
}
