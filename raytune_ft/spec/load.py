"""Read a job spec: YAML file -> dict -> JobSpec, every problem reported at once as a SpecError."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import yaml
from pydantic import ValidationError

from raytune_ft.cluster.storage import is_uri
from raytune_ft.data.location import path_exists
from raytune_ft.errors import SpecError
from raytune_ft.spec.job import JobSpec
from raytune_ft.spec.messages import field_path, message, section_of_crash


def parse_job(data, source: str = "job spec", *, prepared: bool = False, on_cluster: bool = False,
              spec_dir: Optional[Path] = None) -> JobSpec:
    """The validated spec. prepared=True (a run folder whose data were prepared, for `resume`): the
    raw data files are not looked at again, as nothing reads them any more. on_cluster=True (`submit`):
    an absolute data path this machine does not have is left to the cluster's pre-flight (it may be on
    the cluster's shared file system), as a bucket URI always is. spec_dir: the spec file's folder, where a
    relative data path was looked for too (a missing one's message names both places)."""
    if not isinstance(data, dict):
        raise SpecError(source, [("(top level)", "a job spec is a YAML mapping of fields (name, model, data, ...)")])
    try:
        return JobSpec.model_validate(data, context={"prepared": prepared, "on_cluster": on_cluster,
                                                     "spec_dir": spec_dir})
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc, msg = field_path(err["loc"]), message(err)
            if loc == "(top level)":  # the cross-field rules: "path: message", one per line
                for line in msg.splitlines():
                    m = re.match(r"^([\w.\[\]]+): (.*)$", line)
                    problems.append((m.group(1), m.group(2)) if m else (loc, line))
            else:
                problems.append((loc, msg))
        raise SpecError(source, problems) from None
    except (OSError, TypeError, KeyError, AttributeError, RecursionError) as e:
        # A check that could not even run on this value (say a path too long for the OS to look up).
        reason = f"{type(e).__name__}: {e}"
        reason = reason if len(reason) <= 200 else reason[:197] + "..."
        raise SpecError(source, [(section_of_crash(data), f"cannot be checked ({reason}); fix this section")]) from None


def load_job(path, *, on_cluster: bool = False) -> JobSpec:
    """The spec in a YAML file (see parse_job for on_cluster)."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(str(path), [("(file)", "no such file: give the path of a job YAML, e.g. jobs/quickstart.yaml")])
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise SpecError(str(path), [("(file)", yaml_problem(e))]) from None
    except (UnicodeDecodeError, OSError) as e:
        raise SpecError(str(path), [("(file)", f"cannot be read as UTF-8 text: {e}")]) from None
    # A relative data path may be given from the working directory or from the spec's folder.
    data_section = data.get("data") if isinstance(data, dict) else None
    if isinstance(data_section, dict):
        fisher = data_section.get("fisher_source")  # EWC's source-task samples (raytune_ft/ewc/), the same way
        for section, key in [(data_section, k) for k in ("train", "validation", "test", "path", "root")] + \
                ([(fisher, "path")] if isinstance(fisher, dict) else []):
            value = section.get(key)
            if isinstance(value, str) and not is_uri(value) and not Path(value).is_absolute() \
                    and not path_exists(Path(value)) and path_exists(path.parent / value):
                section[key] = str((path.parent / value).resolve())
    return parse_job(data, str(path), on_cluster=on_cluster, spec_dir=path.parent)


def yaml_problem(e) -> str:
    """A YAML syntax error as the spec's problem: where it is (line, column: the file is named by the
    SpecError) and what, without PyYAML's '<unicode string>'."""
    mark = getattr(e, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    what = getattr(e, "problem", None) or str(e).split("\n")[0]
    context, start = getattr(e, "context", None), getattr(e, "context_mark", None)
    if context and start is not None:
        what += f" ({context} at line {start.line + 1})"
    return f"not valid YAML{where}: {what}"
