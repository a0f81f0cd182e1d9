/**
 * statesmith: statechart actors for the background work of long-running Node.js control
 * planes. This file is the curated public surface, grouped by facility.
 *
 * @packageDocumentation
 */

// Errors
export {
  ArgumentRangeError,
  ArgumentTypeError,
  ArgumentValueError,
  BusyError,
  CancelledError,
  CoordinationError,
  DurableError,
  CriticalError,
  DeadlockError,
  InvalidStateError,
  LockAcquireFailed,
  LeadershipLostError,
  LockLostError,
  TaskGroupError,
  type TaskGroupBudget,
  RejectedError,
  TaskAbandonedError,
  TimeoutError,
  UnknownOptionError,
  NoReplyError,
  ActorStoppedError,
} from './errors.ts';

// The command protocol: final replies, and asking for them
export { finalReplies, isFinalReply, verdictOf } from '../machines/finalReplies.ts';
export { ask, type AskOptions } from './runtime/ask.ts';

// Time and logging
export { systemClock, type Clock } from './clock.ts';
export { ManualClock } from './testing/ManualClock.ts';
export { createConsoleLogger, getLogger, setLogger, type LogFields, type Logger, type LogLevel } from './logger.ts';
export type { WaitOptions } from './runtime/deferred.ts';

// Wake-ups (the HA loop's bus)
export { WakeupBus, type Wakeup, type WakeupBusOptions } from './bus/WakeupBus.ts';
export { runLoop, type CycleContext, type RunLoopOptions } from './bus/runLoop.ts';
export { HaLoop, type HaLoopOptions } from './bus/HaLoop.ts';

// Executor (Patroni)
export { AsyncExecutor, type AsyncExecutorOptions, type OwnedSubprocessOptions } from './executor/AsyncExecutor.ts';
export { CriticalTask } from './executor/CriticalTask.ts';
export { CancellableSubprocess, type CancellableSubprocessOptions, type OutputStream, type SubprocessCallOptions } from './subprocess/CancellableSubprocess.ts';

// Tasks and services (frequenz)
export { TaskGroup, type CreateTaskOptions, type TaskGroupActor, type TaskGroupOptions } from './tasks/TaskGroup.ts';
export type { Task } from './tasks/Task.ts';
export { cancelAndAwait } from './tasks/cancelAndAwait.ts';
export { ServiceBase, type Service, type ServiceOptions } from './tasks/ServiceBase.ts';
export type { BackoffOptions, RestartPolicy, RestartType } from './tasks/restartPolicy.ts';
export type { SupervisionStrategy } from './tasks/supervision.ts';

// Locks
export { LockHandle } from './locks/LockHandle.ts';
export { Mutex, type MutexAcquireOptions, type MutexOptions } from './locks/Mutex.ts';
export { currentOwner, runAsOwner } from './runtime/ownerContext.ts';

// Locksmith (asyncutils)
export { ForceResult, RecognitionResult, ResultMember, succeeded } from './locksmith/results.ts';
export {
  Locksmith,
  LockForcedWaiterError,
  type ForceHandler,
  type ForceOptions,
  type ForceRun,
  type HostOptions,
  type LocksmithOptions,
} from './locksmith/Locksmith.ts';
export { LocksmithHooks } from './locksmith/hooks.ts';
export { locksmithLogic, type LocksmithLogic } from './locksmith/locksmithLogic.ts';
export {
  locksmithMachine,
  type LocksmithCommand,
  type LocksmithInput,
  type LocksmithReply,
  type LocksmithTask,
  type LockTarget,
} from '../machines/locksmith.machine.ts';
export { LockForceRequest, serveLockForceRequests, type LockForceDecision, type LockForceHandler } from './locksmith/protocol.ts';
export type { LockLike } from './locksmith/lockKinds.ts';

// Threads (concurrency_utils)
export { releaseSharedMutexesOf, SharedMutex, type SharedMutexAcquireOptions } from './threads/SharedMutex.ts';
export { SharedEvent, type SharedEventWaitOptions } from './threads/SharedEvent.ts';
export { withSharedLock } from './threads/withSharedLock.ts';
export { awaitEventWithStop, type AwaitEventWithStopOptions } from './threads/awaitEventWithStop.ts';
export { asyncNullContext } from './threads/asyncNullContext.ts';
export { WorkerThread, type WorkerThreadOptions } from './threads/WorkerThread.ts';

// Machines, for the inspector and for users who want the pure behaviour
export {
  executorMachine,
  type ErrorData,
  type ExecutorAction,
  type ExecutorCommand,
  type ExecutorContext,
  type ExecutorEvent,
  type ExecutorInput,
  type ExecutorOutcome,
  type ExecutorReply,
  type ExecutorRun,
  type Rejected,
} from '../machines/executor.machine.ts';
export { executorLogic, type ExecutorLogic } from './executor/executorLogic.ts';
export {
  criticalTaskLogic,
  criticalTaskMachine,
  type CriticalTaskLogic,
  type CriticalTaskContext,
  type CriticalTaskEvent,
  type CriticalTaskReply,
} from '../machines/criticalTask.machine.ts';
export {
  subprocessMachine,
  type SubprocessCommand,
  type SubprocessContext,
  type SubprocessInput,
  type SubprocessOutcome,
  type SubprocessReply,
  type SubprocessStopReason,
} from '../machines/subprocess.machine.ts';
export { subprocessLogic, type SubprocessLogic } from './subprocess/subprocessLogic.ts';
export { taskMachine, type TaskContext, type TaskEvent } from '../machines/task.machine.ts';
export {
  serviceMachine,
  type ServiceCommand,
  type ServiceContext,
  type ServiceEvent,
  type ServiceInput,
  type ServiceMain,
  type ServiceReply,
  type ServiceTools,
} from '../machines/service.machine.ts';
export { serviceLogic, type ServiceLogic } from './tasks/serviceLogic.ts';
export {
  taskGroupMachine,
  type TaskFailure,
  type TaskGroupCommand,
  type TaskGroupContext,
  type TaskGroupInput,
  type TaskGroupReply,
  type TaskGroupTask,
  type TaskOutcome,
  type TaskRun,
} from '../machines/taskGroup.machine.ts';
export { taskGroupLogic, type TaskGroupLogic } from './tasks/taskGroupLogic.ts';
export { supervise, type SupervisedLogic, type SupervisedSnapshot, type SupervisedView, type SuperviseOptions } from './tasks/supervise.ts';
export { durable, idempotent, type DurableContext, type DurableLogic, type DurableOptions, type DurableSnapshot, type DurableView } from './durable/durable.ts';
export { openStore, type SnapshotRecord, type SnapshotStore, type StoredSnapshot } from './durable/store.ts';
export {
  supervisorMachine,
  type SupervisorContext,
  type SupervisorEvent,
  type SupervisorInput,
  type SupervisorSettings,
} from '../machines/supervisor.machine.ts';
export type { RestartSettings } from '../machines/restart.ts';

// Coordination (OpenStack coordination over tooz)
export { Coordinator, createCoordinator, getDefaultCoordinator, setDefaultCoordinator } from './coordination/Coordinator.ts';
export { DistributedLock } from './coordination/lock/DistributedLock.ts';
export type {
  BackendCapabilities,
  BackendKind,
  CoordinatorOptions,
  CoordinatorState,
  DistributedAcquireOptions,
  DistributedLockHandle,
  GroupMember,
  Membership,
} from './coordination/types.ts';
export { Lock, LockNameError, synchronized, type LockNames, type SynchronizedOptions } from './coordination/lock/synchronized.ts';
export { coordinatorLogic, type CoordinatorLogic } from './coordination/coordinatorLogic.ts';
export { Election, type CampaignOptions, type Leadership } from './coordination/election/Election.ts';
export { electionLogic, type ElectionLogic, type LeaderInfo } from './coordination/election/electionLogic.ts';
export { coordinatorMachine, type CoordinatorCommand, type CoordinatorInput, type CoordinatorReply } from '../machines/coordinator.machine.ts';
