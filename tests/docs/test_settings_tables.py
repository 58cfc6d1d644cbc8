"""The settings tables of the docs are made from the settings classes: each block between
``<!-- settings table: MODULE.CLASS -->`` and ``<!-- end of settings table -->`` is
:func:`tap3d.settings.settings_table` of that class, so a field's help, default or a new field
cannot go stale in the docs."""

from __future__ import annotations

import importlib
import pathlib
import re

from tap3d.settings import settings_table

from helpers import ROOT

BLOCK = re.compile(r"<!-- settings table: ([\w.]+) -->\n(.*?)\n<!-- end of settings table -->",
                   re.S)


def test_every_settings_table_is_made_from_its_class():
    found = []
    for page in sorted(pathlib.Path(ROOT, "docs").glob("*.md")):
        for name, table in BLOCK.findall(page.read_text()):
            module, _, cls = name.rpartition(".")
            expected = settings_table(getattr(importlib.import_module(module), cls))
            assert table == expected, (f"{page.name}: the {name} table is stale; replace it "
                                       f"with:\n{expected}")
            found.append(name)
    assert "tap3d.buildconfig.BuildConfig" in found
