// Reads this host's live state with iproute2 and nft, for the reconciler.
import { readFile } from 'node:fs/promises';
import { IP_ROUTES_ARGV, parseAddresses, parseLinks, parseRoutes, type LiveHostState } from '../../src/host/live-state';
import { nftTableName, SUBNET_ENV_PATH } from '../../src/model';
import { mustRun, runCommand } from './command';

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

export async function readLiveState(network: string): Promise<LiveHostState> {
  const [links, addresses, routes, subnetEnv, nft, forward] = await Promise.all([
    mustRun('ip', ['-json', '-details', 'link', 'show']),
    mustRun('ip', ['-json', '-4', 'addr', 'show']),
    mustRun(IP_ROUTES_ARGV[0], IP_ROUTES_ARGV.slice(1)),
    readOptional(SUBNET_ENV_PATH),
    runCommand('nft', ['list', 'table', 'ip', nftTableName(network)]),
    readOptional('/proc/sys/net/ipv4/ip_forward'),
  ]);
  return {
    links: parseLinks(links),
    addresses: parseAddresses(addresses),
    routes: parseRoutes(routes),
    ...(subnetEnv !== undefined ? { subnetEnv } : {}),
    ...(nft.code === 0 ? { nftTable: nft.stdout } : {}),
    ipForward: forward?.trim() === '1',
  };
}
