import co.elastic.clients.elasticsearch.ElasticsearchClient;
import co.elastic.clients.elasticsearch.inference.CompletionTool;
import co.elastic.clients.elasticsearch.inference.Message;
import co.elastic.clients.elasticsearch.inference.PutResponse;
import co.elastic.clients.elasticsearch.inference.TaskType;
import co.elastic.clients.json.JsonData;
import co.elastic.clients.transport.endpoints.BinaryResponse;
import jakarta.json.Json;
import jakarta.json.JsonObject;
import jakarta.json.JsonValue;
import java.io.InputStream;
import java.io.StringReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * A whole tool-calling loop through the official Elasticsearch Java API client against esproxy.
 *
 * <p>Usage: {@code java -cp <classpath> ChatDriver URL}. Creates a chat_completion endpoint with
 * {@code inference().put} (whose answer the client deserializes strictly), asks with a tool through
 * {@code inference().chatCompletionUnified}, folds the streamed chunks into the tool call, sends
 * the tool's result and folds the answer. Prints one JSON object of what it saw.
 */
public final class ChatDriver {
  private static final String QUESTION = "What is the weather in Paris?";
  private static final String TOOL_RESULT = "18 degrees and sunny";

  private ChatDriver() {}

  /** The streamed answer folded into one message, as an agent loop reads it. */
  private static final class Folded {
    final StringBuilder content = new StringBuilder();
    final StringBuilder arguments = new StringBuilder();
    String toolId;
    String toolName;
    String finish;
    boolean done;
  }

  public static void main(String[] args) throws Exception {
    ElasticsearchClient client = ElasticsearchClient.of(b -> b.host(args[0]));
    Map<String, Object> settings = Map.of(
        "access_key", "<aws_access_key>",
        "secret_key", "<aws_secret_key>",
        "region", "us-east-1",
        "provider", "anthropic",
        "model", "anthropic.claude-3-5-sonnet-20240620-v1:0");
    PutResponse put = client.inference().put(p -> p
        .taskType(TaskType.ChatCompletion)
        .inferenceId("assistant")
        .inferenceConfig(c -> c.service("amazonbedrock").serviceSettings(JsonData.of(settings))));

    CompletionTool tool = CompletionTool.of(t -> t
        .type("function")
        .function(f -> f
            .name("get_weather")
            .description("Get the current weather for a city")
            .parameters(JsonData.of(Map.of(
                "type", "object",
                "properties", Map.of("city", Map.of("type", "string")),
                "required", List.of("city"))))));
    Message question = Message.of(m -> m.role("user").content(c -> c.string(QUESTION)));

    Folded ask = turn(client, List.of(question), tool);
    Message call = Message.of(m -> m
        .role("assistant")
        .content(c -> c.string(ask.content.toString()))
        .toolCalls(tc -> tc
            .id(ask.toolId)
            .type("function")
            .function(f -> f.name(ask.toolName).arguments(ask.arguments.toString()))));
    Message result = Message.of(m -> m
        .role("tool")
        .toolCallId(ask.toolId)
        .content(c -> c.string(TOOL_RESULT)));
    Folded answer = turn(client, List.of(question, call, result), tool);

    JsonObject out = Json.createObjectBuilder()
        .add("put", Json.createObjectBuilder()
            .add("inference_id", put.inferenceId())
            .add("task_type", put.taskType().jsonValue())
            .add("service_settings", Json.createObjectBuilder()
                .add("provider", put.serviceSettings().toJson().asJsonObject().getString("provider"))))
        .add("ask_finish", String.valueOf(ask.finish))
        .add("tool", String.valueOf(ask.toolName))
        .add("arguments", ask.arguments.toString())
        .add("answer_finish", String.valueOf(answer.finish))
        .add("answer", answer.content.toString())
        .add("done", ask.done && answer.done)
        .build();
    System.out.println(out);
    client.close();
  }

  private static Folded turn(ElasticsearchClient client, List<Message> messages, CompletionTool tool)
      throws Exception {
    BinaryResponse response = client.inference().chatCompletionUnified(r -> r
        .inferenceId("assistant")
        .chatCompletionRequest(c -> c.messages(messages).tools(List.of(tool))));
    String text;
    try (InputStream body = response.content()) {
      text = new String(body.readAllBytes(), StandardCharsets.UTF_8);
    }
    Folded folded = new Folded();
    for (String block : text.split("\n\n")) {
      if (block.isEmpty()) {
        continue;
      }
      String[] lines = block.replace("\uFEFF", "").split("\n");
      if (!lines[0].equals("event: message")) {
        throw new IllegalStateException("unexpected event: " + block);
      }
      String data = lines[1].substring("data: ".length());
      if (data.equals("[DONE]")) {
        folded.done = true;
        continue;
      }
      fold(Json.createReader(new StringReader(data)).readObject(), folded);
    }
    return folded;
  }

  private static void fold(JsonObject chunk, Folded folded) {
    for (JsonValue value : chunk.getJsonArray("choices")) {
      JsonObject choice = value.asJsonObject();
      if (choice.containsKey("finish_reason")) {
        folded.finish = choice.getString("finish_reason");
      }
      JsonObject delta = choice.getJsonObject("delta");
      if (delta.containsKey("content")) {
        folded.content.append(delta.getString("content"));
      }
      if (!delta.containsKey("tool_calls")) {
        continue;
      }
      for (JsonValue callValue : new ArrayList<>(delta.getJsonArray("tool_calls"))) {
        JsonObject call = callValue.asJsonObject();
        if (call.containsKey("id")) {
          folded.toolId = call.getString("id");
        }
        JsonObject function = call.getJsonObject("function");
        if (function.containsKey("name")) {
          folded.toolName = function.getString("name");
        }
        if (function.containsKey("arguments")) {
          folded.arguments.append(function.getString("arguments"));
        }
      }
    }
  }
}
