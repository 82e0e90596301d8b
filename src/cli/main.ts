import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { identityCommands } from './identities.js';
import { maintenanceCommands } from './maintenance.js';
import { pushLocalCommand } from './push-local.js';
import { repoCommand } from './repo.js';
import { serveCommand } from './serve.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

export function buildProgram(): Command {
  const program = new Command('artifactapi')
    .description('artifact repository manager: generic, docker, pypi, npm and more')
    .version(pkg.version)
    .exitOverride()
    .showHelpAfterError(false)
    // Usage errors are one line too, in the same form as every other error.
    .configureOutput({ outputError: (str, write) => write(`artifactapi: ${str.replace(/^error: /, '').trim()}\n`) });
  serveCommand(program);
  repoCommand(program);
  pushLocalCommand(program);
  maintenanceCommands(program);
  identityCommands(program);
  return program;
}

/** Errors become one line on stderr and a non-zero exit code. */
export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) process.exit(err.exitCode);
    process.stderr.write(`artifactapi: ${(err as Error).message}\n`);
    process.exit(typeof (err as { exitCode?: number }).exitCode === 'number' ? (err as { exitCode: number }).exitCode : 1);
  }
}
