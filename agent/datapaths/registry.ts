// The datapaths this agent carries, in the order `auto` tries them.
import type { DatapathFactory } from './datapath';
import { kernelDatapathFactory } from './kernel';
import { ebpfDatapathFactory } from './ebpf';
import { userspaceDatapathFactory } from './userspace';

export const DATAPATH_FACTORIES: readonly DatapathFactory[] = [kernelDatapathFactory, ebpfDatapathFactory, userspaceDatapathFactory];
