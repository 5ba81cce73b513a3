"""Shell commands that set or unset the DOCKER_* variables (``machine env``, ``cluster
env``), in the syntax of the user's shell, as docker-machine prints them."""

from __future__ import annotations

import os

SHELLS = ("bash", "zsh", "fish", "powershell", "cmd", "tcsh")


def format_env(env: dict[str, str], shell: str, unset: bool, hint: str) -> str:
    lines = []
    for key, value in env.items():
        if shell == "fish":
            lines.append(f"set -e {key};" if unset else f'set -gx {key} "{value}";')
        elif shell == "powershell":
            lines.append(f"Remove-Item Env:\\{key}" if unset else f'$Env:{key} = "{value}"')
        elif shell == "cmd":
            lines.append(f"SET {key}=" if unset else f"SET {key}={value}")
        elif shell == "tcsh":
            lines.append(f"unsetenv {key};" if unset else f'setenv {key} "{value}";')
        else:
            lines.append(f"unset {key}" if unset else f'export {key}="{value}"')
    comment = "REM" if shell == "cmd" else "#"
    lines.append(f"{comment} Run this command to configure your shell:")
    lines.append(f"{comment} {hint}")
    return "\n".join(lines)


def shell_hint(shell: str, cmd: str) -> str:
    if shell == "fish":
        return f"eval ({cmd})"
    if shell == "powershell":
        return f"& {cmd} | Invoke-Expression"
    if shell == "cmd":
        return f"@FOR /f \"tokens=*\" %i IN ('{cmd}') DO @%i"
    return f"eval $({cmd})"


def default_shell() -> str:
    name = os.path.basename(os.environ.get("SHELL", "bash"))
    return name if name in SHELLS else "bash"
