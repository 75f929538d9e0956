#!/usr/bin/env python3
"""validate_json.py — check gpup's machine output against doc/schema/.

    validate_json.py [--strict] [--exit N] SCHEMA_DIR NAME FILE
        FILE (a command's standard output) must hold exactly one JSON object,
        valid against SCHEMA_DIR/NAME.schema.json. --exit N: the command
        exited N; a failure object's error.exit_status must say so, and a
        command that exited 0 must not print one.
    validate_json.py --lines SCHEMA_DIR NAME FILE
        every line of FILE (standard error under --progress=json) must be one
        JSON object valid against NAME (events); an empty FILE is valid.

--strict also adds an unknown member to each object of the document in turn
and requires every such copy to fail: a schema that lets a member through
unchecked is reported with the object's JSON pointer.

Duplicate members, NaN and Infinity are refused (json-c never writes them; a
reader in another language may keep either duplicate). Exit status: 0 valid,
1 invalid (one line per problem on stdout), 2 usage, 3 the jsonschema module
is missing (Debian: python3-jsonschema).
"""
import json
import os
import sys

try:
    import jsonschema
    from jsonschema import Draft202012Validator
except ImportError:
    print("the Python module jsonschema is missing (Debian: python3-jsonschema)")
    sys.exit(3)

UNKNOWN = "gpup_unknown_member"


def load_schemas(schema_dir):
    """Every *.schema.json of @schema_dir by its $id."""
    schemas = {}
    for name in sorted(os.listdir(schema_dir)):
        if name.endswith(".schema.json"):
            with open(os.path.join(schema_dir, name), encoding="utf-8") as f:
                s = json.load(f)
            Draft202012Validator.check_schema(s)
            schemas[s["$id"]] = (name, s)
    return schemas


def validator_for(schemas, name):
    """A validator for NAME.schema.json that resolves the $refs between the
    files offline: through the `referencing` registry (jsonschema >= 4.18)
    or a RefResolver store (Debian 12's 4.10)."""
    by_name = {n: s for n, s in schemas.values()}
    schema = by_name.get(name + ".schema.json")
    if schema is None:
        print("no schema %s.schema.json" % name)
        sys.exit(2)
    try:
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT202012
    except ImportError:
        resolver = jsonschema.RefResolver.from_schema(
            schema, store={i: s for i, (_, s) in schemas.items()})
        return Draft202012Validator(schema, resolver=resolver)
    registry = Registry().with_resources(
        (i, Resource.from_contents(s, default_specification=DRAFT202012))
        for i, (_, s) in schemas.items())
    return Draft202012Validator(schema, registry=registry)


def strict_loads(text):
    def no_dupes(pairs):
        obj = {}
        for k, v in pairs:
            if k in obj:
                raise ValueError("duplicate member %r" % k)
            obj[k] = v
        return obj

    def no_constant(c):
        raise ValueError("%s is not JSON" % c)

    return json.loads(text, object_pairs_hook=no_dupes, parse_constant=no_constant)


def problems(validator, doc):
    out = []
    for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
        # The deepest reasons of an if/then/oneOf say what is wrong.
        leaves = [e]
        while leaves and all(x.context for x in leaves):
            leaves = [c for x in leaves for c in x.context]
        for x in leaves[:3]:
            out.append("/%s: %s" % ("/".join(str(p) for p in x.absolute_path), x.message))
    return out


def objects(doc, pointer=""):
    """(pointer, object) of every object in @doc, the root first."""
    if isinstance(doc, dict):
        yield pointer, doc
        for k, v in doc.items():
            yield from objects(v, pointer + "/" + str(k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from objects(v, pointer + "/" + str(i))


def loose_objects(validator, doc):
    """Pointers of the objects that accept an unknown member."""
    loose = []
    for pointer, obj in list(objects(doc)):
        obj[UNKNOWN] = 1
        if validator.is_valid(doc):
            loose.append(pointer or "/")
        del obj[UNKNOWN]
    return loose


def main(argv):
    strict = lines = False
    status = None
    while argv and argv[0].startswith("--"):
        opt = argv.pop(0)
        if opt == "--strict":
            strict = True
        elif opt == "--lines":
            lines = True
        elif opt == "--exit" and argv:
            status = int(argv.pop(0))
        else:
            argv = []
    if len(argv) != 3:
        print(__doc__)
        return 2
    schema_dir, name, path = argv
    validator = validator_for(load_schemas(schema_dir), name)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if lines:
        if text and not text.endswith("\n"):
            print("the last line has no newline")
            return 1
        docs = list(enumerate(text[:-1].split("\n"), 1)) if text else []
    else:
        docs = [(None, text)]
    bad = []
    for n, chunk in docs:
        where = "line %d: " % n if n else ""
        try:
            doc = strict_loads(chunk)
        except ValueError as e:
            bad.append("%snot one JSON value (%s): %.200r" % (where, e, chunk))
            continue
        if not isinstance(doc, dict):
            bad.append("%snot a JSON object: %.200r" % (where, chunk))
            continue
        bad += [where + p for p in problems(validator, doc)]
        if status is not None and not lines:
            said = doc.get("error", {}).get("exit_status") if isinstance(doc.get("error"), dict) else None
            if status == 0 and "error" in doc:
                bad.append("/error: the command exited 0")
            elif said is not None and said != status:
                bad.append("/error/exit_status: %s, but the command exited %d" % (said, status))
        if strict and not bad:
            bad += ["%s%s: an unknown member passes the schema" % (where, p)
                    for p in loose_objects(validator, doc)]
    for b in bad:
        print(b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
