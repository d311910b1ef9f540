// Everything that imports cdktf lives in stacks/, so moving to CDK Terrain (cdktn) is a
// rename here and nowhere else.
export { PodNetwork, terraformLiteral, type NodeResourceKind, type PodNetworkProps } from './pod-network';
// The construct's quoting is the project's one shell quoter (src/host/shell-quote.ts).
export { shQuote as shellQuote } from '../src/host/shell-quote';
export { agentFingerprint } from './agent-fingerprint';
