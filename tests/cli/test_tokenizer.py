"""The tokenizer command line, and the ChnSentiCorp reader it trains from."""

import pytest

from minillm.cli.errors import run_main
from minillm.cli.tokenizer import main
from minillm.data.labelled import chnsenticorp


@pytest.mark.parametrize("kind, size", [("bpe", 300), ("wordpiece", 300), ("char", 0)])
def test_train_encode_decode(tmp_path, capsys, kind, size):
    main(["train", "--data", "tinyshakespeare", "--kind", kind, "--vocab-size", str(size), "--out", str(tmp_path)])
    assert f"{kind} tokenizer with" in capsys.readouterr().out
    main(["encode", "--tokenizer", str(tmp_path), "First Citizen:"])
    ids = capsys.readouterr().out.split()
    assert len(ids) >= 3 and all(i.isdigit() for i in ids)
    main(["decode", "--tokenizer", str(tmp_path), *ids])
    assert capsys.readouterr().out.lower() == ("first citizen :\n" if kind == "wordpiece" else "first citizen:\n")


def test_bad_ids_are_a_clear_exit(tmp_path):
    main(["train", "--data", "tinyshakespeare", "--kind", "char", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="^error: id 999 at position 0 is not in the vocabulary"):
        run_main(main, ["decode", "--tokenizer", str(tmp_path), "999"])
    with pytest.raises(SystemExit, match="^error: decode: ids must be integers"):
        run_main(main, ["decode", "--tokenizer", str(tmp_path), "x"])


def test_chnsenticorp_reader():
    rows = chnsenticorp()
    assert len(rows) == 7766 and sum(label for _, label in rows) == 5322
    assert sum(text == "" for text, _ in rows) == 1
    # The first row is quoted (it has commas) and doubles its inner quotes: "" -> ".
    assert rows[0] == ('距离川沙公路较近,但是公交指示不对,如果是"蔡陆线"的话,会非常麻烦.'
                       '建议用别的路线.房间较为简单.', 1)


def test_chnsenticorp_bad_row_names_the_line(tmp_path):
    (tmp_path / "chnsenticorp").mkdir()
    (tmp_path / "chnsenticorp" / "ChnSentiCorp_htl_all.csv").write_text('label,review\n1,"ok, fine"\n2,bad\n',
                                                                         encoding="utf-8")
    with pytest.raises(ValueError, match=r"ChnSentiCorp_htl_all.csv, line 3: expected label \(0 or 1\)"):
        chnsenticorp(str(tmp_path))
