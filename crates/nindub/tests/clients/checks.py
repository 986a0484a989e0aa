"""What both client tests share: a failed check, and how a pass is printed."""


class CheckFailed(Exception):
    pass


def ok(message):
    print(f"ok: {message}", flush=True)


def check(condition, message):
    if not condition:
        raise CheckFailed(message)
