// Renders desired host state for people: routes in `route -n` shape (as flannel's
// walkthrough shows them), the tunnel device as `ip -d link` describes it, subnet.env.
import { describeUnderlay, routeTableRows, type DesiredHostState } from '../model';

function pad(text: string, width: number): string {
  return text.length >= width ? `${text} ` : text.padEnd(width);
}

export function renderRouteTable(state: DesiredHostState): string[] {
  const header = `${pad('Destination', 16)}${pad('Gateway', 16)}${pad('Genmask', 16)}${pad('Flags', 6)}Iface`;
  return [
    header,
    ...routeTableRows(state).map((r) => `${pad(r.destination, 16)}${pad(r.gateway, 16)}${pad(r.genmask, 16)}${pad(r.flags, 6)}${r.iface}`),
  ];
}

export function renderTunnelDevice(state: DesiredHostState): string {
  const t = state.tunnel;
  return `${t.device}: ipip remote any local ${t.local} ttl inherit nopmtudisc, mtu ${t.mtu}, address ${t.address}`;
}

export function renderHostState(state: DesiredHostState, address: string): string {
  const indent = (lines: string[]) => lines.map((l) => `    ${l}`);
  return [
    `${state.node} (${address}): pod subnet ${state.podCidr}, datapath ${state.datapath}`,
    `  underlay ${describeUnderlay(state.underlay)}`,
    `  device  ${renderTunnelDevice(state)}`,
    `  bridge  ${state.bridge.device} ${state.bridge.address}`,
    '  routes (route -n, cluster rows):',
    ...indent(renderRouteTable(state)),
    `  ${state.subnetEnv.path}:`,
    ...indent(state.subnetEnv.content.trimEnd().split('\n')),
  ].join('\n');
}
