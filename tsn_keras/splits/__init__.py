"""Dataset split files -> (video path, label) lists and class names.

Six layouts, one result (`Split`):

  ucf101  <split_dir>/classInd.txt ("<1-based index> <class>"), trainlistNN.txt
          ("<class>/<video> <1-based label>") and testlistNN.txt ("<class>/<video>", the label
          comes from the folder), NN = 01..03. A label on a test line, or a train line without
          one, is accepted: a class folder must be in classInd.txt and agree with the label,
          when given. split_dir defaults to <video_root>/ucfTrainTestlist.
  hmdb51  <split_dir>/<class>_test_splitN.txt, lines "<video> <id>": 1 = train, 2 = test,
          0 = unused. The classes are the sorted class names of those files; the videos are at
          <video_root>/<class>/<video>. split_dir defaults to
          <video_root>/testTrainMulti_7030_splits (the folder HMDB51's archive unpacks to).
  kinetics  the official annotation CSVs in <split_dir> (default <video_root>/annotations):
          train.csv (or mmaction2's kinetics_train.csv) is the train list, validate.csv
          (val.csv, validation.csv, kinetics_val.csv) the test list, test.csv (or
          kinetics_test.csv) the unlabelled list, for prediction only; --train_list /
          --test_list name other files (a labelled test.csv can be the test list). Columns by
          the header: label,youtube_id,time_start,time_end,split[,is_cc] (labels may hold
          spaces, commas and quotes, CSV-quoted). Classes = the sorted labels of the train
          list, so the index is the same whatever part of the dataset is on disk. A video is
          the first of <video_root>[/videos][/<split>][/<label>]/<youtube_id>_<start:06d>_
          <end:06d>.<ext> or .../<youtube_id>.<ext> that exists (<split> as in the row, or
          train / val, validate / test, or mmaction2's videos_train / videos_val; <label> as
          written or with '_' for spaces; any VIDEO_EXTENSIONS; folder names compare
          case-insensitively); a clip in cvdf's replacement/replacement_for_corrupted_k400/
          is taken first (counted in `Split.replaced`).
  ssv2    something-something-v2-labels.json ({template: index}), -train.json and
          -validation.json (lists of {id, template, label, placeholders}) and -test.json ({id};
          unlabelled, for prediction only) in <split_dir> (default <video_root>/labels); the
          class is the template with its brackets removed ("Putting [something] on a surface"
          -> "Putting something on a surface"), its index the labels file's; videos are
          <video_root>/<id>.webm (any VIDEO_EXTENSIONS). Classes depend on left vs right: train
          with --random_flip=false.
          Kinetics and SSv2 downloads are always incomplete: a listed video that is not on
          disk is left out of the lists and reported in `Split.not_found` (and counted per
          list in `Split.listed`); `require_all` makes that an error.
  folder  <video_root>/<class>/.../<video> (one folder per class, sorted names; folders
          without videos are skipped); split by a stable hash, see below. Every other file in
          the class folders is counted by extension in `Split.ignored` (hidden files aside).
  csv     a CSV file of "path,label" lines (label = class name, path relative to video_root,
          an optional "path,label" header); classes = sorted label names; split by hash.

Real files are read as they are: UTF-8 with or without a BOM, CRLF or LF, trailing whitespace,
blank lines, backslashes as separators, and names whose case differs from the disk (UCF101's
`HandstandPushups/v_HandStandPushups_...`): a path that does not exist as written is looked up
case-insensitively, one directory listing per folder (cached).

Errors (a malformed line, an unknown class, a bad label, a path that leaves video_root,
the same video listed twice) raise ValueError("<file>:<line>: <what is wrong>; <what to do>";
JSON files name the entry and its id). A ucf101, hmdb51 or csv video that is not on disk does
not raise: it stays in its list, with the path it would have, and is reported in
`Split.missing` as "<file>:<line>: <path>" (the converter records it as a failure; the command
line exits with status 1); for kinetics and ssv2 see above. `require_all` turns either into a
ValueError that counts them.

The hash split (folder, csv) puts a video in the test set when
sha1(key) mod 10000 < round(test_fraction * 10000), where key is the lowercased relative path;
for UCF101-style names (`v_<Class>_gGG_cCC.ext`) the `_cCC` is dropped from the key, so the
clips of one group land on the same side, as UCF101's own splits keep them. The split depends
only on the file names: reruns and other machines agree, and adding videos moves no other.

Command line (checks a dataset before a long conversion):
    python -m tsn_keras.splits --dataset ucf101 --video_root UCF-101 \
        --split_dir ucfTrainTestlist --split 1
prints the train/test counts, the classes with their per-class counts, the missing videos (for
kinetics, ssv2: how many of each list were found, and which were not) and the ignored files;
exit status 0 when all is well, 1 when videos are missing (kinetics, ssv2: only with
--require_all), 2 on a bad flag or a bad split file.
"""

# The docstring above is also the command's --help text, so the layout is told here instead:
# `common` (Split, video ids, constants, list reading, errors, the disk index), the readers
# `ucf_hmdb` (UCF101, HMDB51), `folder_csv` (folder per class, CSV) and `web` (Kinetics,
# SSv2), `load` (`load_split`), `command` (`format_split_summary`, `main`; run by `__main__`).
# Imports go one way: common <- readers <- load <- command <- this package.

from tsn_keras.splits.command import (
    define_dataset_flags,
    format_split_summary,
    main,
    split_from_flags,
    write_unlabelled,
)
from tsn_keras.splits.common import (
    DATASETS,
    DEFAULT_SPLIT_DIRS,
    HMDB51_SPLIT_DIR,
    KINETICS_SPLIT_DIR,
    SSV2_SPLIT_DIR,
    UCF101_SPLIT_DIR,
    VIDEO_EXTENSIONS,
    Split,
    video_id,
)
from tsn_keras.splits.load import load_split
from tsn_keras.splits.web import ssv2_class_name

__all__ = [
    "DATASETS",
    "DEFAULT_SPLIT_DIRS",
    "HMDB51_SPLIT_DIR",
    "KINETICS_SPLIT_DIR",
    "SSV2_SPLIT_DIR",
    "UCF101_SPLIT_DIR",
    "VIDEO_EXTENSIONS",
    "Split",
    "define_dataset_flags",
    "format_split_summary",
    "load_split",
    "main",
    "split_from_flags",
    "ssv2_class_name",
    "video_id",
    "write_unlabelled",
]
