//! GroupService: create, get, delete (R01, R02, R03, R04, R07, R12), idempotent creates.

mod creation;
mod deletion;
mod external_keys;
mod ids;
mod limits;
mod naming;
mod visibility;
