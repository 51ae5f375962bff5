"""Research team: hands the plan's steps to workers, the independent ones in parallel.

Research steps depend on nothing, so they all run at once (one `Send` each). An analysis or
processing step works on what came before it, so it waits for every earlier step. With the
`parallel_steps` option off, each wave holds only the first ready step, so the steps run one
after another in plan order. After each wave the team node runs again: it announces the sources
the wave registered and the steps it finished (their notes citing registry ids, the numbers the
report and its Sources list use, which only exist once the wave's sources are merged), and sends
the next wave, or, when every step of the plan is done, returns to the planner.
"""

from __future__ import annotations

from collections.abc import Sequence

from langgraph.runtime import Runtime as GraphRuntime
from langgraph.types import Send

from agents.events import Phase, SourceAdded, Status, StepDone
from agents.nodes import Node, emit
from agents.report import global_notes
from agents.runtime import Runtime
from agents.state import ResearchState, Step, StepTask, StepType

_STEP_FIELDS = {"iteration", "index", "title", "error"}


async def research_team(state: ResearchState, runtime: GraphRuntime[Runtime]) -> ResearchState:
    """Announce sources registered and steps finished since the last wave, and the research
    phase on entry."""
    if not any(
        r.iteration == state.get("plan_iterations", 0) for r in state.get("step_results", [])
    ):
        emit(runtime, Status(message="Researching the plan's steps.", phase=Phase.RESEARCHING))
    sources = state.get("sources", [])
    for source in sources[state.get("sources_announced", 0) :]:
        emit(runtime, SourceAdded(source=source))
    announced = {tuple(key) for key in state.get("steps_announced", [])}
    for result in state.get("step_results", []):
        if result.key not in announced:
            notes = global_notes(result, sources)
            emit(runtime, StepDone(**result.model_dump(include=_STEP_FIELDS), notes=notes))
    keys = [list(result.key) for result in state.get("step_results", [])]
    return {"sources_announced": len(sources), "steps_announced": keys}


def depends_on(steps: Sequence[Step], index: int) -> list[int]:
    """The steps that step `index` must wait for."""
    if steps[index].step_type is StepType.RESEARCH:
        return []
    return list(range(index))


def worker_for(step: Step) -> Node:
    """The role that runs a step."""
    return Node.RESEARCHER if step.step_type is StepType.RESEARCH else Node.CODER


def dispatch_steps(state: ResearchState) -> list[Send] | str:
    """Send every step whose dependencies are done; the planner once the plan is finished."""
    plan = state.get("plan")
    iteration = state.get("plan_iterations", 0)
    results = state.get("step_results", [])
    done = {r.index for r in results if r.iteration == iteration}
    steps = plan.steps if plan else []
    ready = [
        i
        for i in range(len(steps))
        if i not in done and all(j in done for j in depends_on(steps, i))
    ]
    if not ready:
        return Node.PLANNER
    if not state["options"].parallel_steps:
        ready = ready[:1]
    return [
        Send(
            worker_for(steps[i]),
            StepTask(
                question=state["question"],
                options=state["options"],
                iteration=iteration,
                index=i,
                step=steps[i],
                earlier=[] if steps[i].step_type is StepType.RESEARCH else results,
                sources=[] if steps[i].step_type is StepType.RESEARCH else state.get("sources", []),
            ),
        )
        for i in ready
    ]
