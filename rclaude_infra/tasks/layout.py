"""The names in a task directory, the same locally and under a task's S3 prefix.

One list, read by the runner that writes them, the local provider that reads them and
the S3 records of the ECS provider.
"""

from __future__ import annotations

SPEC_FILE = "spec.json"
#: ``{"t": epoch ms, "line": text}`` per output line: the followable log.
LOG_FILE = "log.jsonl"
#: The command's standard output; for Claude Code its JSON event stream, nothing else.
TRANSCRIPT_FILE = "transcript.jsonl"
#: The command's standard error (also in the log).
STDERR_FILE = "stderr.log"
DIFF_FILE = "diff.patch"
ARTIFACTS_DIR = "artifacts"
#: Written last by the runner: the outcome. Its presence means every output is there.
RESULT_FILE = "result.json"
#: Claude Code's configuration directory for the task (``CLAUDE_CONFIG_DIR``).
CLAUDE_DIR = "claude"
#: The Claude Code settings a spec gives (``--settings``), inside :data:`CLAUDE_DIR`.
SETTINGS_FILE = "task-settings.json"
#: Written by whoever stops a local task, read by the runner for its result's reason.
STOP_REASON_FILE = "stop_reason"
#: Written by a local runner where cgroups are writable: the path of the task's cgroup.
CGROUP_FILE = "cgroup"
#: Claude Code's session of a prompt task (its conversation), for a later task to resume.
SESSION_FILE = "session.jsonl"
#: The last checkpoint of a running agent (``{"count", "session_id", "at"}``): with the
#: session and the diff so far, where a preempted task's next attempt goes on from.
CHECKPOINT_FILE = "checkpoint.json"
#: The runner's scratch git index for a checkpoint's diff (the repository's own index is
#: the agent's to use meanwhile).
CHECKPOINT_INDEX = "checkpoint.index"
#: The files a finished task leaves for its user, besides artifacts and the result.
OUTPUT_FILES: tuple[str, ...] = (LOG_FILE, TRANSCRIPT_FILE, STDERR_FILE, DIFF_FILE,
                                 SESSION_FILE, CHECKPOINT_FILE)
#: What a task's earlier attempt left (its result, checkpoint, session and diff), fetched
#: into this directory when the task runs again after a spot interruption.
PREVIOUS_DIR = "previous"
CHECKPOINT_FILES: tuple[str, ...] = (DIFF_FILE, SESSION_FILE, CHECKPOINT_FILE)
#: What a resuming task starts from (``TaskSpec.resume_from``): the session and the diff of
#: the task it resumes, copied under this directory by its submitter.
RESUME_DIR = "resume"
RESUME_INPUTS: tuple[str, ...] = (SESSION_FILE, DIFF_FILE)
#: The runner's exit code when a spot interruption notice stopped it (EX_TEMPFAIL: try
#: again); its result then says ``preempted``, which the ECS provider reads to be sure.
PREEMPTED_EXIT = 75
#: What the runner's container runs on ECS: the image's ``CMD``, and RunTask's override.
RUNNER_COMMAND: tuple[str, ...] = ("python", "-m", "rclaude_infra.runner", "--s3")

#: Where the ECS provider keeps tasks in the bucket: ``tasks/<task id>/``.
TASKS_PREFIX = "tasks/"
#: Each ECS attempt of a task reads and writes only its run's folder,
#: ``tasks/<task id>/runs/<run>/``, where the run is the attempt's ``aws:userid``
#: (``<task role id>:<ECS task id>``): the task role's policy names it with that variable.
RUNS_DIR = "runs"
RUN_KEY_PATTERN = TASKS_PREFIX + "*/" + RUNS_DIR + "/${aws:userid}/*"
#: Written last by the submitter into a run's folder: the spec and the names of the
#: inputs it copied there (resume inputs, the earlier attempt's result and checkpoint).
#: The runner waits for it, then reads exactly those.
INPUTS_FILE = "inputs.json"
#: The tag of a task's secret naming the run (``aws:userid``) that may read it.
RUN_TAG = "rclaude:run"
