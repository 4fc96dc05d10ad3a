"""Small Last.fm-2k and KGCN look-alike files, written by tests into a temporary directory.

They carry the cases real files have or might have: names with quotes, backslashes, emoji and
combining marks; a UTF-8 row in the ISO-8859-1 tags file and a Latin-1 row in a UTF-8 file; rows
with the wrong number of fields, non-numeric ids, impossible dates and references to artists that
do not exist.
"""

from __future__ import annotations

from pathlib import Path

ODD_NAMES = {
    "1": '"Weird Al" Yankovic',
    "2": "+\\-",
    "3": "Bjo\u0308rk",  # o + COMBINING DIAERESIS, kept as written
    "4": "🎸 Guitar Emoji Band",
    "5": "Sigur Rós",
    "6": "Line\u2028Separator",
}


def write_lastfm(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    artists = ["id\tname\turl\tpictureURL"]
    for key, name in ODD_NAMES.items():
        artists.append(f"{key}\t{name}\thttp://www.last.fm/music/a{key}\thttp://img.example/{key}.jpg")
    artists.append("7\tNo Picture\thttp://www.last.fm/music/No+Picture\t")
    artists.append("x9\tBad Id\thttp://www.last.fm/music/Bad\t")  # malformed: non-numeric id
    artists.append("10\ttoo\tmany\tfields\there")  # malformed: five fields
    data = ("\n".join(artists) + "\n").encode("utf-8")
    data += "8\tMotörhead\thttp://www.last.fm/music/Mot%C3%B6rhead\t\n".encode("latin-1")  # wrong encoding
    (directory / "artists.dat").write_bytes(data)

    tags = "tagID\ttagValue\n1\trock français\n2\tmetal\n3\n".encode("latin-1")  # row 3: malformed
    tags += "4\tdüsseldorf\n".encode()  # a UTF-8 row in the Latin-1 file
    (directory / "tags.dat").write_bytes(tags)

    (directory / "user_artists.dat").write_text(
        "userID\tartistID\tweight\n"
        "2\t1\t100\n2\t2\t50\n2\t8\t7\n"
        "3\t1\t10\n3\t3\t30\n3\t4\t1\n"
        "4\t5\t20\n4\t99\t5\n"  # artist 99 does not exist
        "4\tfive\t5\n"  # malformed
        "5\t6\t3\n5\t7\t0\n",  # a play count of 0 is not a listening
        encoding="utf-8",
    )
    (directory / "user_taggedartists.dat").write_text(
        "userID\tartistID\ttagID\tday\tmonth\tyear\n"
        "2\t1\t1\t1\t4\t2009\n2\t8\t2\t2\t4\t2009\n3\t3\t4\t15\t7\t2008\n"
        "3\t4\t2\t31\t2\t2009\n"  # 31 February
        "4\t5\t2\t1\t1\t2010\n4\t99\t2\t1\t1\t2010\n",  # unknown artist
        encoding="utf-8",
    )
    (directory / "user_friends.dat").write_text(
        "userID\tfriendID\n2\t3\n3\t2\n4\t5\n5\t4\n5\t5\n", encoding="utf-8"
    )
    return directory


def write_kgcn(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "item_index2entity_id.txt").write_bytes(b"1\t0\r\n3\t1\r\n5\t2\r\n99\t3\r\n")
    (directory / "kg.txt").write_bytes(
        b"0\tmusic.artist.origin\t10\r\n"
        b"1\tmusic.artist.origin\t10\r\n"
        b"1\tmusic.artist.genre\t11\r\n"
        b"2\tmusic.artist.influenced_by\t0\r\n"  # tail is an artist's entity
        b"0\tnot a relation!\t12\r\n"  # malformed relation name
        b"2\tmusic.artist.genre\r\n"  # malformed: two fields
    )
    return directory
