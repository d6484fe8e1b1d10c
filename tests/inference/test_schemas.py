"""Integration-neutral request parsing: ids, task types, bodies and query values, in ES's words."""

import pytest

from esproxy.errors import ProxyError
from esproxy.inference import schemas
from esproxy.inference.models import InferenceRequest, TaskType

PARSER = "[cluster:internal/xpack/inference]"


def rejected(message):
    return f"Validation Failed: 1: {message};"


def failure(call, *args):
    with pytest.raises(ProxyError) as raised:
        call(*args)
    error = raised.value
    return error.status, error.error_type, error.reason


@pytest.mark.parametrize("inference_id", ["a", "my-endpoint", "a.b_c-d", "0", "e5"])
def test_valid_inference_ids_pass(inference_id):
    schemas.validate_inference_id(inference_id)


@pytest.mark.parametrize("inference_id", ["_all", "My-id", "-a", "a-", "a b", "", "über", "a_"])
def test_invalid_inference_ids_fail_request_validation(inference_id):
    assert failure(schemas.validate_inference_id, inference_id) == (
        400,
        "action_request_validation_exception",
        f"Validation Failed: 1: Invalid inference_id; '{inference_id}' can contain lowercase "
        "alphanumeric (a-z and 0-9), hyphens or underscores; must start and end with "
        "alphanumeric;",
    )


@pytest.mark.parametrize(
    ("path", "body", "resolved"),
    [
        (TaskType.TEXT_EMBEDDING, {}, TaskType.TEXT_EMBEDDING),
        ("completion", {}, TaskType.COMPLETION),
        (None, {"task_type": "completion"}, TaskType.COMPLETION),
        (TaskType.ANY, {"task_type": " Text_Embedding "}, TaskType.TEXT_EMBEDDING),
        ("text_embedding", {"task_type": "text_embedding"}, TaskType.TEXT_EMBEDDING),
    ],
)
def test_task_type_comes_from_the_path_or_the_body(path, body, resolved):
    assert schemas.resolve_task_type(path, body) is resolved


@pytest.mark.parametrize(
    ("path", "body", "reason"),
    [
        (None, {}, "model is missing required setting [task_type]"),
        (TaskType.ANY, {"task_type": None}, "model is missing required setting [task_type]"),
        (None, {"task_type": "bad"}, "Unknown task_type [bad]"),
        ("bad", {}, "Unknown task_type [bad]"),
        (None, {"task_type": "any"}, "task_type [any] is not valid type for inference"),
        (
            TaskType.TEXT_EMBEDDING,
            {"task_type": "Completion"},
            "Cannot resolve conflicting task_type parameter in the request URL [text_embedding] "
            "and the request body [Completion]",
        ),
        (
            None,
            {"task_type": 5},
            "field [task_type] is not of the expected type. The value [5] cannot be converted to "
            "a [String]",
        ),
    ],
)
def test_task_type_faults_use_es_texts(path, body, reason):
    assert failure(schemas.resolve_task_type, path, body) == (400, "status_exception", reason)


def test_the_service_setting_is_required():
    assert schemas.require_service({"service": "amazonbedrock"}) == "amazonbedrock"
    assert failure(schemas.require_service, {"service_settings": {}}) == (
        400,
        "status_exception",
        "Inference endpoint configuration is missing the [service] setting",
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("1m", 60.0),
        ("500ms", 0.5),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1500micros", 0.0015),
        ("1000000nanos", 0.001),
        (" 10 S ", 10.0),
        ("-1", -1.0),
        ("-001", -1.0),
        ("0", 0.0),
        ("000", 0.0),
        ("-1s", -1.0),
    ],
)
def test_time_values_parse_as_es_does(text, seconds):
    assert schemas.parse_time_value("timeout", text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "error_type", "reason"),
    [
        (
            "abc",
            "parse_exception",
            "failed to parse setting [timeout] with value [abc] as a time value: unit is missing "
            "or unrecognized",
        ),
        (
            "1M",
            "parse_exception",
            "failed to parse setting [timeout] with value [1M] as a time value: unit is missing "
            "or unrecognized",
        ),
        (
            "10",
            "parse_exception",
            "failed to parse setting [timeout] with value [10] as a time "
            "value: unit is missing or unrecognized",
        ),
        (
            "1.5s",
            "parse_exception",
            "failed to parse [1.5s], fractional time values are not supported",
        ),
        ("xs", "parse_exception", "failed to parse [xs]"),
        (
            "-2s",
            "illegal_argument_exception",
            "failed to parse setting [timeout] with value [-2s] as a time value: negative "
            "durations are not supported",
        ),
    ],
)
def test_bad_time_values_fail_with_es_texts(text, error_type, reason):
    assert failure(schemas.parse_time_value, "timeout", text) == (400, error_type, reason)


@pytest.mark.parametrize(("text", "value"), [("true", True), ("false", False), ("", True)])
def test_query_booleans_are_strict(text, value):
    assert schemas.parse_bool_param("force", text) is value


@pytest.mark.parametrize("text", ["yes", "TRUE", "1", "False"])
def test_other_query_booleans_fail(text):
    assert failure(schemas.parse_bool_param, "force", text) == (
        400,
        "illegal_argument_exception",
        f"Failed to parse value [{text}] as only [true] or [false] are allowed.",
    )


def test_a_body_decodes_to_its_json_object():
    assert schemas.decode_json_body('{"input": ["a", "é"]}'.encode()) == {"input": ["a", "é"]}
    assert schemas.decode_json_body(b'\xef\xbb\xbf {"a": 1}') == {"a": 1}


@pytest.mark.parametrize(
    ("raw", "error_type", "reason"),
    [
        (b"", "parse_exception", "request body is required"),
        (b" \n", "parse_exception", "request body is required"),
        (b"[1]", "x_content_parse_exception", "[1:1] Expected START_OBJECT but was: START_ARRAY"),
        (
            b'\n  "x"',
            "x_content_parse_exception",
            "[2:3] Expected START_OBJECT but was: VALUE_STRING",
        ),
        (
            b'{"a": }',
            "x_content_parse_exception",
            "[1:7] Unexpected character ('}' (code 125)): expected a valid value (JSON String, "
            "Number, Array, Object or token 'null', 'true' or 'false')",
        ),
        (
            b"{a:1}",
            "x_content_parse_exception",
            "[1:2] Unexpected character ('a' (code 97)): was expecting double-quote to start "
            "field name",
        ),
        (
            b'{"a":tru}',
            "x_content_parse_exception",
            "[1:6] Unrecognized token 'tru': was expecting (JSON String, Number, Array, Object or "
            "token 'null', 'true' or 'false')",
        ),
        (b'{"a":1', "x_content_parse_exception", "[1:7] Unexpected end-of-input"),
        (b'{"a":1,"a":2}', "x_content_parse_exception", "[1:11] Duplicate field 'a'"),
        (b'{"a":"\xff"}', "x_content_parse_exception", "[1:7] Invalid UTF-8 start byte 0xff"),
        (
            b'{"a":"\xe2\x28\xa1"}',
            "x_content_parse_exception",
            "[1:7] Invalid UTF-8 middle byte 0x28",
        ),
        (
            b'{"a":NaN}',
            "x_content_parse_exception",
            "[1:6] Non-standard token 'NaN': enable `JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS` "
            "to allow",
        ),
    ],
)
def test_undecodable_bodies_fail_as_es_parse_errors(raw, error_type, reason):
    assert failure(schemas.decode_json_body, raw) == (400, error_type, reason)


def load(task_type, raw):
    return schemas.load_inference_request(task_type, schemas.decode_json_body(raw))


@pytest.mark.parametrize(
    ("task_type", "raw", "expected"),
    [
        (
            TaskType.COMPLETION,
            b'{"input": "What is Elastic?"}',
            InferenceRequest(["What is Elastic?"]),
        ),
        (
            TaskType.TEXT_EMBEDDING,
            b'{"input": ["a", 1, true], "input_type": " Search ", '
            b'"task_settings": {"truncate": "end"}}',
            InferenceRequest(["a", "1", "true"], "search", {"truncate": "end"}),
        ),
        (
            TaskType.COMPLETION,
            b'{"input": "x", "input_type": "unspecified", "timeout": "10s", "task_settings": {}}',
            InferenceRequest(["x"], "unspecified", timeout=10.0),
        ),
        (
            TaskType.ANY,
            b'{"input": "x", "input_type": "ingest", "top_n": 2, "return_documents": "false"}',
            InferenceRequest(["x"], "ingest"),
        ),
    ],
)
def test_post_bodies_load_into_inference_requests(task_type, raw, expected):
    assert load(task_type, raw) == expected


@pytest.mark.parametrize(
    ("task_type", "raw", "error_type", "reason"),
    [
        (
            TaskType.COMPLETION,
            b"{}",
            "action_request_validation_exception",
            "Validation Failed: 1: Field [input] cannot be null;",
        ),
        (
            TaskType.COMPLETION,
            b'{"input": []}',
            "action_request_validation_exception",
            "Validation Failed: 1: Field [input] cannot be an empty array;",
        ),
        (
            TaskType.COMPLETION,
            b'{"input": "x", "return_documents": true}',
            "action_request_validation_exception",
            rejected("Field [return_documents] cannot be specified for task type [completion]"),
        ),
        (
            TaskType.TEXT_EMBEDDING,
            b'{"input": "x", "top_n": 3}',
            "action_request_validation_exception",
            rejected("Field [top_n] cannot be specified for task type [text_embedding]"),
        ),
        (
            TaskType.TEXT_EMBEDDING,
            b'{"input": "x", "query": "q"}',
            "action_request_validation_exception",
            rejected("Field [query] cannot be specified for task type [text_embedding]"),
        ),
        (
            TaskType.COMPLETION,
            b'{"input": "x", "input_type": "search"}',
            "action_request_validation_exception",
            rejected("Field [input_type] cannot be specified for task type [completion]"),
        ),
        (
            TaskType.COMPLETION,
            b'{"input": [], "top_n": 1}',
            "action_request_validation_exception",
            "Validation Failed: 1: Field [input] cannot be an empty array;",
        ),
        (
            TaskType.COMPLETION,
            b'{"input": "x", "foo": 1}',
            "x_content_parse_exception",
            f"[1:16] {PARSER} unknown field [foo]",
        ),
        (
            TaskType.COMPLETION,
            b'{\n  "inputs": "x"\n}',
            "x_content_parse_exception",
            f"[2:3] {PARSER} unknown field [inputs] did you mean [input]?",
        ),
        (
            TaskType.COMPLETION,
            b'{"input_typ": "x", "input": 5}',
            "x_content_parse_exception",
            f"[1:2] {PARSER} unknown field [input_typ] did you mean any of [input_type, input]?",
        ),
        (
            TaskType.COMPLETION,
            b'{"input": 5, "foo": 1}',
            "x_content_parse_exception",
            f"[1:11] {PARSER} input doesn't support values of type: VALUE_NUMBER",
        ),
        (
            TaskType.COMPLETION,
            b'{"input": null}',
            "x_content_parse_exception",
            f"[1:11] {PARSER} input doesn't support values of type: VALUE_NULL",
        ),
        (
            TaskType.COMPLETION,
            b'{"input": "x", "task_settings": []}',
            "x_content_parse_exception",
            f"[1:33] {PARSER} task_settings doesn't support values of type: START_ARRAY",
        ),
        (
            TaskType.COMPLETION,
            b'{"input": ["a", null]}',
            "x_content_parse_exception",
            f"[1:17] {PARSER} failed to parse field [input]",
        ),
        (
            TaskType.TEXT_EMBEDDING,
            b'{"input": "x", "input_type": "internal_ingest"}',
            "x_content_parse_exception",
            f"[1:30] {PARSER} failed to parse field [input_type]",
        ),
        (
            TaskType.TEXT_EMBEDDING,
            b'{"input": "x", "timeout": "soon"}',
            "x_content_parse_exception",
            f"[1:27] {PARSER} failed to parse field [timeout]",
        ),
        (
            TaskType.COMPLETION,
            b'{"input": "x", "return_documents": "yes"}',
            "x_content_parse_exception",
            f"[1:36] {PARSER} failed to parse field [return_documents]",
        ),
    ],
)
def test_bad_post_bodies_get_the_first_error_es_reports(task_type, raw, error_type, reason):
    assert failure(load, task_type, raw) == (400, error_type, reason)


@pytest.mark.parametrize(
    ("raw", "cause"),
    [
        (
            b'{"input": ["a", null]}',
            {"type": "illegal_state_exception", "reason": "Can't get text on a VALUE_NULL at 1:17"},
        ),
        (
            b'{"input": ["a", ["b"]]}',
            {"type": "illegal_state_exception", "reason": "expected value but got [START_ARRAY]"},
        ),
        (
            b'{"input": "x", "input_type": "internal_ingest"}',
            {
                "type": "illegal_argument_exception",
                "reason": "Unrecognized input_type [internal_ingest]",
            },
        ),
        (
            b'{"input": "x", "input_type": "foo"}',
            {
                "type": "illegal_argument_exception",
                "reason": "No enum constant org.elasticsearch.inference.InputType.FOO",
            },
        ),
        (
            b'{"input": "x", "timeout": "soon"}',
            {
                "type": "parse_exception",
                "reason": "failed to parse setting [timeout] with value "
                "[soon] as a time value: unit is missing or unrecognized",
            },
        ),
    ],
)
def test_field_parse_failures_carry_their_cause(raw, cause):
    with pytest.raises(ProxyError) as raised:
        load(TaskType.TEXT_EMBEDDING, raw)
    assert raised.value.to_body()["error"]["caused_by"] == cause


def test_bodies_not_decoded_here_are_located_as_compact_json():
    body = {"input": "x", "foo": 1}
    assert failure(schemas.load_inference_request, TaskType.COMPLETION, body) == (
        400,
        "x_content_parse_exception",
        f"[1:14] {PARSER} unknown field [foo]",
    )


def test_columns_count_utf8_bytes_as_jackson_does():
    raw = '{"input": "é😀", "foo": 1}'.encode()
    assert failure(load, TaskType.COMPLETION, raw)[2] == f"[1:21] {PARSER} unknown field [foo]"
