"""Shared pytest set-up: quiet TensorFlow logs in tests and their subprocesses, and the slow
marks that keep `bash scripts/test.sh` under 5 minutes on 2 cores."""

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Tests of 6-20 s each on 2 cores (`pytest --durations`), whose behaviour a faster test also
# covers in the default run (a sibling parameter, the same code in-process, a smaller case).
# They still run in CI (.ci/run) and with `bash scripts/test.sh --all`. The rest are marked
# with @pytest.mark.slow where they are written.
SLOW = {
    "test_tvl1.py::test_flow_batches_bound_the_short_side_sizes",
    "test_tvl1.py::test_early_exit_saves_steps_not_bits",
    "test_tvl1.py::test_a_pair_alone_equals_the_pair_inside_a_batch",
    "test_tvl1.py::test_converter_failures_resume_and_reruns[tvl1_tensor]",
    "test_tvl1_opencv.py::test_equal_settings_give_opencvs_flow[epsilon on]",
    "test_tvl1_opencv.py::test_tsn_preset_against_opencv_cpu_set_near",
    "test_evaluate_predict.py::test_predict_command_json_short_and_broken_videos",
    "test_stuck_video.py::test_ctrl_c_ends_the_run_while_a_worker_is_stuck_in_a_read",
    "test_stuck_video.py::test_a_video_whose_reads_block_times_out_and_the_rest_convert[1]",
    "test_train_faults.py::test_a_damaged_test_shard_is_skipped_in_validation_with_the_flag",
    "test_tsn_model.py::test_keras_applications_backbone_by_name_with_cross_modality",
    "test_input_pipeline.py::test_pipeline_training_views_equal_train_augment_of_the_whole_clip[flow]",
    "test_input_pipeline.py::test_pipeline_training_views_equal_train_augment_of_the_whole_clip[rgbdiff]",
    "test_cli.py::test_scripts_are_the_same_commands[scripts/convert_weights.py]",
    "test_cli.py::test_python_dash_m_runs_the_command_with_one_clean_error[tsn_keras.models.weights]",
    "test_export.py::test_keras_file_loads_in_a_fresh_process_with_safe_mode",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid.split("tests/", 1)[-1] in SLOW:
            item.add_marker(pytest.mark.slow)
