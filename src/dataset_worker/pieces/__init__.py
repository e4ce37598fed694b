"""Reading prepared pieces back: the bytes of an inline piece rebuilt from `car_blocks` and the
source files. Shared by the content provider and `verify`; only ever reads the database."""
