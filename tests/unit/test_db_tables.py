"""The light Core tables of db/tables.py match the schema of models.py column for column."""

from __future__ import annotations

from sqlalchemy import DateTime, Enum

from dataset_worker.db import tables
from dataset_worker.db.models import Base


def test_every_light_column_has_the_models_name_and_kind_of_type() -> None:
    checked = 0
    for light in tables.ALL:
        model = Base.metadata.tables[light.name]
        for column in light.c:
            real = model.c[column.name]  # KeyError: a column the models do not have
            # The same affinity converts values the same way (SQLite's timestamps, booleans).
            assert column.type._type_affinity is real.type._type_affinity, column
            if isinstance(real.type, DateTime):
                light_type = column.type
                assert isinstance(light_type, DateTime), column
                assert light_type.timezone == real.type.timezone, column
            if isinstance(real.type, Enum):
                # Stored as the members' values: the light reads compare and return them.
                enum_class = real.type.enum_class
                assert enum_class is not None, column
                assert not real.type.native_enum and real.type.enums == [
                    member.value for member in enum_class
                ], column
            checked += 1
    assert checked >= 25
