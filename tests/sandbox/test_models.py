"""The sandbox's guild model: member lookups stay right as members join, leave and are renamed."""

from __future__ import annotations

from sandbox.models import SGuild, SMember, SUser


def member(uid: int, name: str) -> SMember:
    return SMember(SUser(uid, name), guild_id=1)


def test_member_lookup_by_id_and_name_follows_joins_leaves_and_renames() -> None:
    g = SGuild(1, "g", members=[member(10, "ann"), member(11, "bob"), member(12, "cat")])
    assert g.get_member(11) is g.members[1] and g.get_member("11") is g.members[1]
    assert g.get_member("cat") is g.members[2] and g.get_member(99) is None
    bob = g.members[1]
    g.members.remove(bob)  # leaves …
    g.members.append(member(13, "dan"))  # … and someone joins: the same length as before
    assert g.get_member(11) is None and g.get_member("bob") is None
    assert g.get_member(13).user.name == "dan" and g.get_member("dan").id == 13
    assert g.get_member("cat") is g.members[1]
    g.members[0].user.name = "anne"
    assert g.get_member("ann") is None and g.get_member("anne").id == 10
    g.members.append(member(14, "anne"))  # a second "anne": the first in the list wins, as before
    assert g.get_member("anne").id == 10
