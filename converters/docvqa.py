"""DocVQA (single-page DocVQA, task 1): questions about scanned document pages.

The raw folder is the download, as released per split or flattened::

    train/train_v1.0.json  train/documents/xnbl0037_1.png  val/val_v1.0.json  val/documents/ ...
    spdocvqa_qas/train_v1.0_withQT.json  spdocvqa_images/documents/xnbl0037_1.png  ...

A page image named ``documents/…`` is looked up next to its annotation file first, then at the top of
the folder, then in each top-level folder. One row of ``data`` in ``train_v1.0.json``::

    {"questionId": 337, "question": "what is the date mentioned in this letter?",
     "question_types": ["handwritten", "form"], "image": "documents/xnbl0037_1.png",
     "docId": 279, "ucsf_document_id": "xnbl0037", "ucsf_document_page_no": "1",
     "answers": ["1/8/93", "01/08/93"]}

becomes one line of ``docvqa_train.jsonl`` (the page is copied unchanged to ``images/train/``)::

    {"id": "train-337", "source": "docvqa",
     "conversations": [{"images": ["train/xnbl0037_1.png"],
                        "user": "what is the date mentioned in this letter?", "assistant": "1/8/93"}],
     "meta": {"question_id": 337, "answers": ["1/8/93", "01/08/93"], "question_types": ["handwritten", "form"],
              "doc_id": 279, "ucsf_document_id": "xnbl0037", "ucsf_document_page_no": "1"}}

The assistant text is the first non-blank answer; ``meta.answers`` keeps them all for ANLS. With
``--group-by-image`` each page becomes one multi-turn record ``train-xnbl0037_1`` (the page on the
first turn, the questions in file order, ``meta.questions`` listing each turn's id and answers).
Questions without answers (all of ``test_v1.0.json``) are skipped and counted as ``unlabelled``:
the format needs an answer to train on.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from phi3v_data.converters._images import UnusableImage, copy_image
from phi3v_data.converters._inputs import FolderListing, PlanBuilder, list_folder
from phi3v_data.converters.base import SPLITS, ConverterOptions, Item, ItemResult, Plan
from phi3v_data.errors import InputLayoutError
from phi3v_data.paths import path_fault

_ANNOTATION_NAME = re.compile(r"^(train|val|test)_v1\.0(_withQT)?\.json$")
# Page-level fields copied into meta, under snake_case names.
_DOCUMENT_FIELDS = {
    "docId": "doc_id",
    "ucsf_document_id": "ucsf_document_id",
    "ucsf_document_page_no": "ucsf_document_page_no",
}


class DocVQAOptions(ConverterOptions):
    group_by_image: bool = False
    """Write one multi-turn record per page (its questions in file order) instead of one record per question."""


@dataclass(slots=True)
class _Page:
    image: str
    """As the annotation names it, e.g. ``documents/xnbl0037_1.png``."""
    document: dict[str, Any]
    questions: list[dict[str, Any]] = field(default_factory=list)


class DocVQAConverter:
    """DocVQA: a question about a document page, answered with the first of its answers (all kept in meta)."""

    name: ClassVar[str] = "docvqa"
    summary: ClassVar[str] = "DocVQA document pages and questions: {train,val,test}_v1.0.json with documents/"
    Options: ClassVar[type[ConverterOptions]] = DocVQAOptions

    def plan(self, input_dir: Path, options: DocVQAOptions) -> Plan:
        listing = list_folder(input_dir)
        annotations = _find_annotations(listing)
        if not annotations:
            raise InputLayoutError(
                f"{input_dir} is not a DocVQA folder: expected train_v1.0.json, val_v1.0.json or test_v1.0.json "
                "(at the top or one folder down, as in train/train_v1.0.json) with the page images in a "
                f"documents/ folder next to it, but it holds {listing.describe()}"
            )
        builder = PlanBuilder()
        used = set(annotations.values())
        owners: dict[str, str] = {}  # page file stem -> the annotation whose item writes it
        by_name = _files_by_name(listing)
        for split, annotation in annotations.items():
            pages = _read_pages(input_dir, annotation, builder)
            roots = _image_roots(listing, annotation)
            sources = [_find_image(listing, roots, page.image, by_name) for page in pages]
            if pages and not any(sources):
                raise InputLayoutError(
                    f"none of the {len(pages)} page images that {annotation} names (e.g. {pages[0].image}) is in "
                    f"{_describe(roots)}: expected them in a documents/ folder next to {annotation}"
                )
            for page, source in zip(pages, sources, strict=True):
                if source is None:
                    expected = f"{roots[0]}/{page.image}" if roots[0] else page.image
                    builder.reject(
                        expected,
                        f"no such file (looked in {_describe(roots)}, and for a single file of that name anywhere); "
                        f"named by {annotation}",
                    )
                elif (stem := PurePosixPath(source).stem) in owners:  # a hand-made layout: real page names are unique
                    builder.reject(
                        source, f"a page named {stem} is already used by {owners[stem]}; page names must be unique"
                    )
                else:
                    owners[stem] = annotation
                    used.add(source)
                    builder.add(
                        split, source, {"source": source, "document": page.document, "questions": page.questions}
                    )
        return builder.finish(listing, used)

    def convert_item(self, item: Item, input_dir: Path, options: DocVQAOptions) -> ItemResult:
        page = item.payload
        stem = PurePosixPath(page["source"]).stem
        image = copy_image(input_dir, page["source"], f"{item.split}/{stem}")
        if isinstance(image, UnusableImage):
            return ItemResult.rejected(image.reason)
        if options.group_by_image:
            records = [_page_record(f"{item.split}-{stem}", page, image.relative_path)]
        else:
            records = [
                _question_record(item.split, page, question, image.relative_path) for question in page["questions"]
            ]
        return ItemResult(records=records, images=[image])


def _question_record(split: str, page: dict[str, Any], question: dict[str, Any], image: str) -> dict[str, Any]:
    return {
        "id": f"{split}-{question['question_id']}",
        "source": DocVQAConverter.name,
        "conversations": [{"images": [image], "user": question["question"], "assistant": question["answer"]}],
        "meta": {**_question_meta(question), **page["document"]},
    }


def _page_record(record_id: str, page: dict[str, Any], image: str) -> dict[str, Any]:
    turns = [
        {"images": [image] if number == 0 else [], "user": question["question"], "assistant": question["answer"]}
        for number, question in enumerate(page["questions"])
    ]
    meta = {**page["document"], "questions": [_question_meta(question) for question in page["questions"]]}
    return {"id": record_id, "source": DocVQAConverter.name, "conversations": turns, "meta": meta}


def _question_meta(question: dict[str, Any]) -> dict[str, Any]:
    meta = {"question_id": question["question_id"], "answers": question["answers"]}
    if "question_types" in question:
        meta["question_types"] = question["question_types"]
    return meta


def _find_annotations(listing: FolderListing) -> dict[str, str]:
    """The annotation file of each split, in split order; ``_withQT`` files (with question types) win."""
    candidates: dict[str, list[str]] = {}
    for path in listing.files:
        match = _ANNOTATION_NAME.match(PurePosixPath(path).name)
        if match and path.count("/") <= 1:
            candidates.setdefault(match.group(1), []).append(path)
    return {
        split: min(candidates[split], key=lambda path: ("_withQT" not in path, path.count("/"), path))
        for split in SPLITS
        if split in candidates
    }


def _read_pages(input_dir: Path, annotation: str, builder: PlanBuilder) -> list[_Page]:
    """The annotation's labelled questions grouped by page, in order of first appearance.

    Unusable rows are rejected; rows without answers are skipped as ``unlabelled``.
    """
    pages: dict[str, _Page] = {}
    seen: dict[Any, int] = {}
    for position, row in enumerate(_load_rows(input_dir / annotation)):
        where = f"{annotation} data[{position}]"
        question = _parse_question(row)
        if isinstance(question, str):
            builder.reject(where, question)
            continue
        question_id = question["question_id"]
        if question_id in seen:
            builder.reject(where, f"questionId {question_id} is already used by data[{seen[question_id]}]")
            continue
        seen[question_id] = position
        if question["answer"] is None:
            builder.skip("unlabelled")
            continue
        document = {name: row[key] for key, name in _DOCUMENT_FIELDS.items() if key in row}
        pages.setdefault(row["image"], _Page(row["image"], document)).questions.append(question)
    return list(pages.values())


def _load_rows(path: Path) -> list[Any]:
    expected = 'expected the DocVQA annotation file {"dataset_name": ..., "data": [...]} as downloaded'
    try:
        content = json.loads(path.read_bytes())
    except UnicodeDecodeError:
        raise InputLayoutError(f"{path} is not UTF-8 text: {expected}") from None
    except json.JSONDecodeError as error:
        raise InputLayoutError(
            f"{path} is not valid JSON ({error.msg} at line {error.lineno} column {error.colno}): {expected}"
        ) from None
    if not isinstance(content, dict) or not isinstance(content.get("data"), list):
        raise InputLayoutError(f'{path} has no "data" list: {expected}')
    return content["data"]


def _parse_question(row: Any) -> dict[str, Any] | str:
    """The question of one annotation row (``answer`` None when it has no answers), or why the row is unusable."""
    if not isinstance(row, dict):
        return "not a JSON object"
    question_id = row.get("questionId")
    if isinstance(question_id, bool) or not isinstance(question_id, (int, str)) or not str(question_id).strip():
        return "questionId is missing or not a number or string"
    text = row.get("question")
    if not isinstance(text, str) or not text.strip():
        return f"questionId {question_id}: question is missing or blank"
    image = row.get("image")
    if not isinstance(image, str) or not image.strip():
        return f"questionId {question_id}: image is missing or blank"
    fault = path_fault(image)
    if fault:
        return f"questionId {question_id}: image {fault.message}"
    question: dict[str, Any] = {"question_id": question_id, "question": text.strip(), "answer": None}
    if "question_types" in row:
        question["question_types"] = row["question_types"]
    if "answers" not in row:
        return question
    answers = row["answers"]
    if not isinstance(answers, list) or not all(isinstance(answer, str) for answer in answers):
        return f"questionId {question_id}: answers is not a list of strings"
    non_blank = [answer.strip() for answer in answers if answer.strip()]
    if not non_blank:
        return f"questionId {question_id}: answers holds no non-blank answer"
    return {**question, "answers": answers, "answer": non_blank[0]}


def _image_roots(listing: FolderListing, annotation: str) -> list[str]:
    """Where page paths are looked up, in order: the annotation's folder, the top, each top-level folder."""
    parent = str(PurePosixPath(annotation).parent)
    roots = ["" if parent == "." else parent, ""]
    roots += sorted(folder for folder in listing.folders if "/" not in folder)
    return list(dict.fromkeys(roots))


def _files_by_name(listing: FolderListing) -> dict[str, list[str]]:
    by_name: dict[str, list[str]] = {}
    for path in sorted(listing.files):
        by_name.setdefault(PurePosixPath(path).name, []).append(path)
    return by_name


def _find_image(listing: FolderListing, roots: list[str], image: str, by_name: dict[str, list[str]]) -> str | None:
    """The page where the annotation says, else the one file of that name anywhere in the input.

    Many copies of DocVQA keep the pages in a flat folder (``images/xnbl0037_1.png``) although the
    annotations say ``documents/xnbl0037_1.png``; page names are unique, so the name alone finds them.
    """
    for root in roots:
        candidate = f"{root}/{image}" if root else image
        if candidate in listing.files:
            return candidate
    same_name = by_name.get(PurePosixPath(image).name, [])
    return same_name[0] if len(same_name) == 1 else None


def _describe(roots: list[str]) -> str:
    return ", ".join(f"{root}/" if root else "the input folder" for root in roots)
