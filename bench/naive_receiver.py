"""The naive consumer bench_receiver.py measures the receiver against: what
a backend team writes in an afternoon. aiomqtt (QoS 1, acknowledged by
aiomqtt as each message is handed over), pycose to verify each COSE_Sign1
with the device's Ed25519 key from the registry, cbor2 to decode the
payload (one signal or a bundle of them), one INSERT per signal and one
commit per message into SQLite (`--wal`: in WAL mode) or, when DB is a
postgresql:// URL, PostgreSQL (psycopg 3, the server's default durability).
No checks beyond the signature, no duplicates counted, no gaps, no alerts
table.

Run by bench/bench_receiver.py: naive_receiver.py REGISTRY DB PORT CLIENT_ID [--wal]
It prints "receiving" once subscribed, as `edge-agent receiver run` does.
"""

import asyncio
import sqlite3
import sys
import tomllib

import aiomqtt
import cbor2
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pycose.headers import KID
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.messages import Sign1Message


def keys(registry_path):
    with open(registry_path, "rb") as f:
        devices = tomllib.load(f)["devices"]
    return dict((name.encode(), OKPKey(crv=Ed25519, x=bytes.fromhex(entry["public_key"])))
                for name, entry in devices.items())


async def main(registry_path, db_path, port, client_id, wal):
    by_kid = keys(registry_path)
    if db_path.startswith("postgresql://"):
        import psycopg

        db = psycopg.connect(db_path)
        db.execute("CREATE TABLE IF NOT EXISTS signals (device TEXT, seq BIGINT, body BYTEA, PRIMARY KEY (device, seq))")
        insert = "INSERT INTO signals VALUES (%s, %s, %s) ON CONFLICT DO NOTHING"
    else:
        db = sqlite3.connect(db_path)
        if wal:
            db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS signals (device TEXT, seq INTEGER, body BLOB, PRIMARY KEY (device, seq))")
        insert = "INSERT OR IGNORE INTO signals VALUES (?, ?, ?)"
    db.commit()
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 3600
    async with aiomqtt.Client("127.0.0.1", port, identifier=client_id, protocol=aiomqtt.ProtocolVersion.V5,
                              clean_start=False, properties=properties) as client:
        await client.subscribe("ea/v1/+/+", qos=1)
        print("receiving", flush=True)
        async for message in client.messages:
            cose = Sign1Message.decode(bytes(message.payload))
            cose.key = by_kid[cose.get_attr(KID)]
            if not cose.verify_signature():
                continue
            item = cbor2.loads(cose.payload)
            for signal in item if isinstance(item, list) else [item]:
                db.execute(insert, (signal[2], signal[3], cbor2.dumps(signal[6])))
            db.commit()


if __name__ == "__main__":
    registry, db_file, port_text, cid = sys.argv[1:5]
    asyncio.run(main(registry, db_file, int(port_text), cid, "--wal" in sys.argv[5:]))
