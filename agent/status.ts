// Writes the agent's status file atomically after every reconcile and every few seconds. Its
// type, text and parser live in the model (src/model/agent-status.ts), shared with the engine.
import { serializeAgentStatus, type AgentStatus } from '../src/model';
import { writeFileAtomic } from './host/atomic-file';

export function writeStatus(path: string, status: AgentStatus): Promise<void> {
  return writeFileAtomic(path, serializeAgentStatus(status));
}
