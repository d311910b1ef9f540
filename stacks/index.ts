// Everything that imports cdktf lives in stacks/, so moving to CDK Terrain (cdktn) is a
// rename here and nowhere else.
export { PodNetwork, shellQuote, terraformLiteral, type NodeResourceKind, type PodNetworkProps } from './pod-network';
export { agentFingerprint } from './agent-fingerprint';
