"""The reference pages, generated from the code that defines what they describe (docs/hooks.py puts them in).

    job_spec()      the job spec's sections and fields      raytune_ft/spec/job.py (pydantic: JSON schema + fields)
    strategies()    the strategy catalogue                  raytune_ft/strategies (the STRATEGIES registry)
    sources()       model sources and data sources          the SOURCES and DATA_SOURCES registries
    cli()           every command, its usage and options    raytune_ft/cli (the typer app, as click sees it)
    tables()        every table a run writes                raytune_ft/results/schema.py (TABLES)
    run_folder()    the run folder's tree                   raytune_ft/layout.py (its docstring)
    versions()      supported ranges, tested set, floors    pyproject.toml, constraints.txt, ci/floor-constraints.txt

Nothing here knows a field, a strategy or a command by name: a new one appears on the next build.
"""
from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

from gen_markdown import docstring, first_sentence, paragraphs, table, text


ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- pydantic models -> tables

def _type(schema: dict, defs: dict) -> str:
    """A property's JSON schema as words: `int ≥ 1`, `searchable number > 0`, `adamw | sgd`, ..."""
    if "$ref" in schema:
        return "section (below)"
    if "oneOf" in schema and "discriminator" in schema:  # a registry: link each entry to its reference
        page = "strategies.md" if schema["discriminator"]["propertyName"] == "name" else "sources.md"
        return "one of: " + ", ".join(f"[`{k}`]({page}#{k})" for k in schema["discriminator"]["mapping"])
    if "anyOf" in schema:
        options = [o for o in schema["anyOf"] if o.get("type") != "null"]
        searchable = any(o.get("title") == "Sampler" for o in options)
        options = [o for o in options if o.get("title") != "Sampler"]
        words = " or ".join(_type(o, defs) for o in options) or "any value"
        nullable = len(options) < len(schema["anyOf"]) - searchable
        return ("searchable " if searchable else "") + words + (" or null" if nullable else "")
    if "const" in schema:
        return f"`{schema['const']}`"
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    kind = schema.get("type")
    if "prefixItems" in schema:  # a tuple
        return "list of " + ", ".join(_type(item, defs) for item in schema["prefixItems"])
    if kind == "array":
        words = "list of " + _type(schema.get("items", {}), defs)
        if "minItems" in schema:
            words += f", at least {schema['minItems']}"
        return words
    if kind == "object":
        values = schema.get("additionalProperties")
        return "map of name to " + _type(values, defs) if isinstance(values, dict) else "map"
    words = {"integer": "int", "number": "number", "string": "text", "boolean": "bool",
             None: "any value"}.get(kind, kind)
    if schema.get("format") == "path":
        words = "path"
    bounds = [f"{sign} {schema[key]:,}" if isinstance(schema[key], int) else f"{sign} {schema[key]}"
              for key, sign in (("exclusiveMinimum", ">"), ("minimum", "≥"), ("exclusiveMaximum", "<"),
                                ("maximum", "≤")) if key in schema]
    return ", ".join([words, *bounds])


def _default(field) -> str:
    from pydantic import BaseModel

    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, Path):
        value = str(value)
    return f"`{json.dumps(value)}`" if not isinstance(value, str) else f"`{value}`"


def fields(model, skip=()) -> list[tuple[str, str, str, str]]:
    """(name, type, default, description) of each field of a pydantic model, in declaration order."""
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    out = []
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        prop = schema["properties"][name]
        out.append((name, _type(prop, defs), _default(field), field.description or prop.get("description", "")))
    return out


def fields_table(model, skip=(), first="field") -> str:
    rows = [[f"`{name}`", kind, default, text(description)] for name, kind, default, description
            in fields(model, skip)]
    return table([first, "type", "default", "description"], rows) if rows else "No fields of its own."


def sections(model, path: str = "") -> list[tuple[str, type]]:
    """(dotted path, model) of every nested section of a model, depth first (Optional sections too)."""
    import typing

    from pydantic import BaseModel

    out = []
    for name, field in model.model_fields.items():
        kinds = [field.annotation, *typing.get_args(field.annotation)]
        models = [k for k in kinds if isinstance(k, type) and issubclass(k, BaseModel)]
        if len(models) == 1:  # a section, or an optional one; not a union over a registry
            nested = models[0]
            out.append((f"{path}{name}", nested))
            out.extend(sections(nested, f"{path}{name}."))
    return out


# --------------------------------------------------------------------------- the pages


# --------------------------------------------------------------------------- the pages

def job_spec() -> str:
    from raytune_ft import searchable
    from raytune_ft.data.config import DataConfig
    from raytune_ft.models.base import ModelConfig
    from raytune_ft.spec.job import JobSpec
    from raytune_ft.strategies.base import StrategyConfig

    out = ["## Searchable values", paragraphs(inspect.cleandoc(searchable.__doc__)),
           "## Top level", docstring(JobSpec), fields_table(JobSpec)]
    for path, model in sections(JobSpec):
        out += [f"## `{path}`", docstring(model), fields_table(model)]
    out += ["## `model`: every source",
            "The fields every model source has; each source adds its own "
            "([model sources](sources.md#model-sources)).", fields_table(ModelConfig, skip=("source",))]
    out += ["## `data`: every source",
            "The fields every data source has; each source adds its own "
            "([data sources](sources.md#data-sources)).", fields_table(DataConfig, skip=("source",))]
    for path, model in sections(DataConfig, "data."):
        out += [f"## `{path}`", docstring(model), fields_table(model)]
    out += ["## `strategies[]`: every strategy",
            "Every entry has these; each strategy adds its own knobs ([strategies](strategies.md)).",
            fields_table(StrategyConfig)]
    return "\n\n".join(part for part in out if part)


def _families(entry) -> str:
    return ", ".join(getattr(entry, "families", None) or [getattr(entry, "family", "")])


def _summary(entry) -> str:
    """What an entry is, as plain text: its Config's docstring, else its class's, else its module's."""
    import sys

    for obj in (entry.Config, entry, sys.modules[entry.__module__]):
        raw = obj.__dict__.get("__doc__") if isinstance(obj, type) else obj.__doc__
        if raw:
            return inspect.cleandoc(raw)
    return ""


def _entry(name: str, entry, skip) -> list[str]:
    summary = paragraphs(_summary(entry))
    how = docstring(entry)
    out = [f"### `{name}`", summary]
    if how and how != summary:
        out.append(how)
    return out + [fields_table(entry.Config, skip=skip, first="knob" if "hparams" in skip else "field")]


def strategies() -> str:
    from raytune_ft.strategies import STRATEGIES
    from raytune_ft.strategies.base import StrategyConfig

    common = tuple(StrategyConfig.model_fields)
    rows = []
    for name, entry in STRATEGIES.items():
        knobs = ", ".join(f"`{k}`" for k in entry.Config.model_fields if k not in common) or "none"
        rows.append([f"[`{name}`](#{name.replace('_', '_')})", text(first_sentence(_summary(entry))), knobs,
                     _families(entry), "yes" if entry.trains_backbone else "no"])
    out = [table(["name", "what it is", "knobs", "families",
                  "pretrained weights move (`l2sp`, `ewc` apply)"], rows)]
    settings = {"fsdp": "`resources.distributed: fsdp`", "gradient_checkpointing": "`hparams.gradient_checkpointing`"}
    for name, entry in STRATEGIES.items():
        out += _entry(name, entry, common)
        notes = [f"Families: {_families(entry)}."] + (["Trains on a CUDA GPU only."] if entry.needs_cuda else [])
        notes += [f"Not with {settings[what]}: {why}." for what, why in entry.unsupported.items()]
        out.append(" ".join(notes))
    return "\n\n".join(part for part in out if part)


def sources() -> str:
    from raytune_ft.data import DATA_SOURCES
    from raytune_ft.data.config import DataConfig
    from raytune_ft.models import SOURCES
    from raytune_ft.models.base import ModelConfig

    out = ["## Model sources", table(["source", "what it is", "family"], [
        [f"`{n}`", text(first_sentence(_summary(e))), _families(e)] for n, e in SOURCES.items()])]
    model_common = tuple(ModelConfig.model_fields)
    for name, entry in SOURCES.items():
        out += _entry(name, entry, model_common)
        out.append(f"Family: {_families(entry)}. Every model source also takes the fields of "
                   "[`model`: every source](job-spec.md#model-every-source).")
    out += ["## Data sources", table(["source", "what it is", "family", "several label columns"], [
        [f"`{n}`", text(first_sentence(_summary(e))), _families(e), "yes" if e.Config.multi_task else "no"]
        for n, e in DATA_SOURCES.items()])]
    data_common = tuple(DataConfig.model_fields)
    for name, entry in DATA_SOURCES.items():
        out += _entry(name, entry, data_common)
        suffixes = getattr(entry.Config, "suffixes", ())
        reads = f" Reads {', '.join(f'`{s}`' for s in suffixes)} files." if suffixes else ""
        out.append(f"Family: {_families(entry)}.{reads} Every data source also takes the fields of "
                   "[`data`: every source](job-spec.md#data-every-source).")
    return "\n\n".join(part for part in out if part)


def cli() -> str:
    import typer

    from raytune_ft.cli import app
    from raytune_ft.cli import app as app_module  # noqa: F401  (the app's module docstring: exit codes)

    group = typer.main.get_command(app)
    ctx = group.make_context("raytune-ft", [], resilient_parsing=True)
    import sys

    out = [text(group.help), docstring(sys.modules["raytune_ft.cli.app"])]
    rows = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        rows.append([f"[`{name}`](#raytune-ft-{name})", text(first_sentence(command.help or ""))])
    out.append(table(["command", "what it does"], rows))
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        sub = command.make_context(name, [], parent=ctx, resilient_parsing=True)
        usage = command.get_usage(sub).replace("Usage: ", "")
        out += [f"## `raytune-ft {name}`", "```\n" + usage + "\n```", paragraphs(command.help or "")]
        params = []
        for param in command.get_params(sub):
            record = param.get_help_record(sub) if hasattr(param, "get_help_record") else None
            if record and record[0] != "--help":
                params.append([f"`{record[0]}`", text(record[1])])
        if params:
            out.append(table(["argument / option", "meaning"], params))
    return "\n\n".join(part for part in out if part)


def layout_entries() -> dict[str, str]:
    """{name: what it holds} from the run folder tree in raytune_ft/layout.py's docstring."""
    from raytune_ft import layout

    entries = {}
    for line in inspect.cleandoc(layout.__doc__).splitlines()[2:]:
        parts = re.split(r"\s{2,}", line.strip())
        for name, what in zip(parts[::2], parts[1::2]):
            entries[name] = what
    return entries


def layout_tree() -> str:
    """The run folder's tree, exactly as raytune_ft/layout.py's docstring draws it."""
    from raytune_ft import layout

    doc = layout.__doc__
    start = doc.index("\n    runs/")
    return inspect.cleandoc(doc[start:].split('\n"""')[0])


def tables() -> str:
    from raytune_ft.results import schema

    holds = layout_entries()
    out = [docstring(schema)]
    for name, columns in schema.TABLES.items():
        rows = [[f"`{column}`", f"`{kind}`", text(meaning)] for column, kind, meaning in columns]
        out += [f"## `{name}.parquet`", text(holds.get(f"{name}.parquet", "")).capitalize() + ".",
                table(["column", "type", "meaning"], rows)]
    return "\n\n".join(part for part in out if part)


def run_folder() -> str:
    from raytune_ft.layout import RESULT_FILES

    return "\n\n".join([
        "```\n" + layout_tree() + "\n```",
        "What `raytune-ft fetch` brings home from a run's storage (the tables and reports, not the weights): "
        + ", ".join(f"`{f}`" for f in RESULT_FILES) + "."])


def _pins(path: Path) -> dict[str, str]:
    from packaging.utils import canonicalize_name

    pins = {}
    for line in path.read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("#")[0].strip().split("==")
            pins[canonicalize_name(name)] = version
    return pins


def versions() -> str:
    """pyproject.toml's ranges beside constraints.txt's tested set and CI's floors (ci/floor-constraints.txt)."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    tested, floor = _pins(ROOT / "constraints.txt"), _pins(ROOT / "ci" / "floor-constraints.txt")
    rows = []
    for spec in project["dependencies"]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
        written = re.sub(r"^\s*[\w.-]+(\[[^\]]*\])?", "", spec.split(";")[0]).strip()  # as pyproject says it
        rows.append([f"`{req.name}{extras}`", f"`{written}`" if written else "any",
                     tested.get(name, "—"), floor.get(name, "as pip resolves")])
    notes = [line.lstrip("# ").rstrip() for line in (ROOT / "ci" / "floor-constraints.txt").read_text().splitlines()
             if line.startswith("#")]
    return "\n\n".join([
        f"Python `{project['requires-python']}`.",
        table(["package", "supported (`pyproject.toml`)", "tested set (`constraints.txt`)",
               "oldest, tested in CI (`ci/floor-constraints.txt`)"], rows),
        "Extras (`pip install 'raytune_ft[NAME]'`): " + "; ".join(
            f"`{extra}`: " + ", ".join(f"`{dep}`" for dep in deps)
            for extra, deps in project.get("optional-dependencies", {}).items()) + ".",
        "Why the floors are where they are (`ci/floor-constraints.txt`):",
        "\n".join("> " + text(line) for line in notes)])
