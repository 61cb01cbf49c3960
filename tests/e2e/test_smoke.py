async def test_bot_connects_and_registers_jit(world):
    names = {c["name"] for c in world.sb.commands()}
    assert {"jit", "warden"} <= names
