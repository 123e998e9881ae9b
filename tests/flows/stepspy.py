"""Test helpers that swap or watch pipeline steps (catvec.base.steps) under a flow."""


def replace_step(monkeypatch, module, name: str, body):
    """Swap module.<name> (a step) for a new step with the same marker whose function is
    body(real_function, *args, **kwargs); the flow makes a fresh task for it."""
    from catvec.base.steps import Step

    real = getattr(module, name)

    def wrapped(*args, **kwargs):
        return body(real.fn, *args, **kwargs)

    wrapped.__name__ = real.fn.__name__
    monkeypatch.setattr(module, name, Step(wrapped, real.info))


def count_calls(monkeypatch, module, name: str) -> list:
    calls = []
    replace_step(monkeypatch, module, name, lambda real, *a, **k: calls.append(1) or real(*a, **k))
    return calls


def record_tasks(monkeypatch, adapter) -> list:
    """The task names a flow runs, in order (each step call goes through adapter.task_of)."""
    names = []
    real = adapter.task_of

    def task_of(step):
        names.append(step.info.name)
        return real(step)

    monkeypatch.setattr(adapter, "task_of", task_of)
    return names
