package io.assetline.examples;

import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Future;
import org.apache.avro.AvroRuntimeException;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.generic.GenericRecordBuilder;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.BinaryMessageEncoder;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Publishes GenerationRequests to {@code <prefix>.requests} and (optionally) waits for their
 * AssetCompleted events on {@code <prefix>.completed}.
 *
 * <p>The wire format is Avro single-object encoding: {@code C3 01}, the 8-byte little-endian
 * CRC-64-AVRO fingerprint of the writer schema's Parsing Canonical Form, then the Avro binary
 * body. Avro's {@link BinaryMessageEncoder} writes exactly that, so no framing code lives here.
 *
 * <pre>
 * java -jar target/assetline-producer.jar --bootstrap 127.0.0.1:9092 --prefix assetline \
 *     --run demo1 --count 5 --kind TEXT [--await 60] [--schemas ../../../schemas]
 * java -jar target/assetline-producer.jar --fingerprint ../../../schemas/*.avsc
 * </pre>
 *
 * <p>stdout carries only data (one request id per line, then one completion per line with
 * {@code --await}); kafka-clients logs go to stderr.
 *
 * <p>Without {@code --run} the ids get a random part, so two runs never share ids. With {@code
 * --await}, a completion counts only if it answers what this run asked (kind, tenant, campaign,
 * idempotency key): a request id another producer used first completes with <em>its</em>
 * result. Exit codes: 0 all DELIVERED, 3 timed out, 4 some not DELIVERED or not ours.
 */
public final class Producer {

  private Producer() {}

  public static void main(String[] argv) throws Exception {
    if (argv.length > 0 && argv[0].equals("--fingerprint")) {
      for (int i = 1; i < argv.length; i++) {
        printHeader(new File(argv[i]));
      }
      return;
    }
    Map<String, String> args = parseArgs(argv);
    File schemas = new File(args.getOrDefault("schemas", "schemas"));
    Schema requestSchema = parse(new File(schemas, "generation_request.avsc"));
    String prefix = args.getOrDefault("prefix", "assetline");
    String bootstrap = args.getOrDefault("bootstrap", "127.0.0.1:9092");

    List<GenericRecord> requests =
        buildRequests(
            requestSchema,
            args.getOrDefault("run", defaultRun()),
            Integer.parseInt(args.getOrDefault("count", "5")),
            args.getOrDefault("kind", "TEXT"),
            args.getOrDefault("tenant", "acme"),
            args.getOrDefault("campaign", "java-example"));
    List<String> ids = produce(bootstrap, prefix + ".requests", requestSchema, requests);
    ids.forEach(System.out::println);
    System.out.flush();

    if (args.containsKey("await")) {
      Schema completedSchema = parse(new File(schemas, "asset_completed.avsc"));
      Duration timeout = Duration.ofSeconds(Long.parseLong(args.get("await")));
      Outcome outcome =
          awaitCompletions(bootstrap, prefix + ".completed", completedSchema, requests, timeout);
      if (outcome.failed() > 0) {
        System.err.println(
            outcome.failed() + " of " + ids.size() + " request(s) not DELIVERED as asked");
        System.exit(4);
      }
      if (outcome.timedOut()) {
        System.err.println("timed out waiting for completions");
        System.exit(3);
      }
    }
  }

  /** A run id of its own: the time plus a random part, so two runs never share request ids. */
  static String defaultRun() {
    return System.currentTimeMillis() + "-" + HexFormat.of().formatHex(randomBytes(4));
  }

  static byte[] randomBytes(int count) {
    byte[] bytes = new byte[count];
    new SecureRandom().nextBytes(bytes);
    return bytes;
  }

  /** How waiting ended: ids still without a completion, and completions that do not count. */
  record Outcome(boolean timedOut, int failed) {}

  /** What differs between a completion and the request it should answer (empty: it is ours). */
  static List<String> mismatches(GenericRecord request, GenericRecord completed) {
    List<String> out = new ArrayList<>();
    for (String field : List.of("kind", "tenant", "campaign_id", "idempotency_key")) {
      String asked = String.valueOf(request.get(field));
      String got = String.valueOf(completed.get(field));
      if (!asked.equals(got)) {
        out.add(field + " " + got + " (asked " + asked + ")");
      }
    }
    return out;
  }

  /** Requests with every required field set; fields with defaults in the schema are left to it. */
  static List<GenericRecord> buildRequests(
      Schema schema, String run, int count, String kind, String tenant, String campaign) {
    Schema modelSchema = schema.getField("model").schema();
    Schema constraintsSchema = schema.getField("constraints").schema();
    // An enum value must carry its schema; a plain String is rejected by GenericDatumWriter.
    GenericData.EnumSymbol kindSymbol =
        new GenericData.EnumSymbol(schema.getField("kind").schema(), kind);

    GenericRecordBuilder constraints = new GenericRecordBuilder(constraintsSchema);
    if (kind.equals("IMAGE")) {
      constraints.set("width", 256).set("height", 192).set("format", "png");
    } else if (kind.equals("TEXT")) {
      constraints.set("max_chars", 120);
    }

    List<GenericRecord> out = new ArrayList<>(count);
    for (int i = 0; i < count; i++) {
      String requestId = String.format("%s-%05d", run, i);
      out.add(
          new GenericRecordBuilder(schema)
              .set("request_id", requestId)
              // A real service uses its own stable key for the intent (e.g. an order id); the
              // completion carries it back so resubmissions can be matched to results.
              .set("idempotency_key", requestId)
              .set("tenant", tenant)
              .set("campaign_id", campaign)
              .set("kind", kindSymbol)
              .set("prompt_template", "Headline for ${persona} in ${locale}")
              .set("variables", Map.of("persona", "persona-" + (i % 3), "locale", "en-GB"))
              // All-null ModelSpec: the line's routing config picks the default alias.
              .set("model", new GenericRecordBuilder(modelSchema).build())
              .set("constraints", constraints.build())
              // timestamp-millis is a long on the wire; GenericData has no conversion by default.
              .set("created_at", System.currentTimeMillis())
              .build());
    }
    return out;
  }

  /** Sends every request keyed by request_id and waits until the broker acknowledged them all. */
  static List<String> produce(
      String bootstrap, String topic, Schema schema, List<GenericRecord> requests)
      throws Exception {
    Properties props = new Properties();
    props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    // acks=all + idempotence: a retried send cannot duplicate or reorder a request.
    props.put(ProducerConfig.ACKS_CONFIG, "all");
    props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);
    props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());

    // One encoder per schema: it caches the header (magic + fingerprint) and a datum writer.
    BinaryMessageEncoder<GenericRecord> encoder =
        new BinaryMessageEncoder<>(GenericData.get(), schema);
    List<String> ids = new ArrayList<>(requests.size());
    try (KafkaProducer<String, byte[]> producer = new KafkaProducer<>(props)) {
      List<Future<RecordMetadata>> sent = new ArrayList<>(requests.size());
      for (GenericRecord request : requests) {
        String id = request.get("request_id").toString();
        // The key is the request id: the line keys every topic by it.
        sent.add(producer.send(new ProducerRecord<>(topic, id, toBytes(encoder.encode(request)))));
        ids.add(id);
      }
      for (Future<RecordMetadata> ack : sent) {
        ack.get(); // surfaces any send error instead of printing an id that was never written
      }
    }
    return ids;
  }

  /**
   * Reads {@code .completed} from the beginning of every partition (no consumer group, nothing
   * committed) and prints {@code <request_id> <status> <location or reasons>} for each wanted id
   * whose completion answers our request; one that answers another request goes to stderr.
   */
  static Outcome awaitCompletions(
      String bootstrap, String topic, Schema schema, List<GenericRecord> requests,
      Duration timeout) {
    Properties props = new Properties();
    props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
    props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    props.put(
        ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());

    // The decoder checks the magic bytes and the fingerprint. Completions written with another
    // schema version raise MissingSchemaException unless that writer schema is added with
    // decoder.addSchema(old): then Avro resolves it to the schema given here.
    BinaryMessageDecoder<GenericRecord> decoder =
        new BinaryMessageDecoder<>(GenericData.get(), schema);
    Map<String, GenericRecord> wanted = new LinkedHashMap<>();
    requests.forEach(r -> wanted.put(r.get("request_id").toString(), r));
    int failed = 0;
    long deadline = System.nanoTime() + timeout.toNanos();
    try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
      List<TopicPartition> partitions =
          consumer.partitionsFor(topic).stream()
              .map(p -> new TopicPartition(topic, p.partition()))
              .toList();
      consumer.assign(partitions);
      consumer.seekToBeginning(partitions);
      while (!wanted.isEmpty() && System.nanoTime() < deadline) {
        for (ConsumerRecord<byte[], byte[]> message : consumer.poll(Duration.ofMillis(500))) {
          GenericRecord done;
          try {
            done = decoder.decode(message.value());
          } catch (IOException | AvroRuntimeException e) {
            System.err.println("skipping undecodable completion: " + e.getMessage());
            continue;
          }
          String id = done.get("request_id").toString();
          GenericRecord request = wanted.remove(id);
          if (request == null) {
            continue;
          }
          List<String> wrong = mismatches(request, done);
          if (!wrong.isEmpty()) {
            // The line keeps one completion per request id: ours was dropped as a duplicate.
            failed++;
            System.err.println(
                id + " completed for another request: " + String.join(", ", wrong)
                    + "; its id was used before, choose another --run");
            continue;
          }
          if (!"DELIVERED".equals(done.get("status").toString())) {
            failed++;
          }
          Object location = done.get("location");
          Object detail = location != null ? location : done.get("reasons");
          System.out.println(id + " " + done.get("status") + " " + detail);
          System.out.flush();
        }
      }
    }
    return new Outcome(!wanted.isEmpty(), failed);
  }

  /**
   * Prints the 10-byte header Avro's own encoder writes for a schema ({@code C3 01} +
   * fingerprint), so tests can compare it with the Python line's fingerprint.
   */
  static void printHeader(File avsc) throws IOException {
    Schema schema = parse(avsc);
    BinaryMessageEncoder<Object> encoder = new BinaryMessageEncoder<>(GenericData.get(), schema);
    byte[] frame = toBytes(encoder.encode(sample(schema)));
    System.out.println(HexFormat.of().formatHex(frame, 0, 10) + " " + avsc.getName());
  }

  /** The smallest valid datum of a schema: lets the encoder run on any contract. */
  static Object sample(Schema s) {
    return switch (s.getType()) {
      case RECORD -> {
        GenericData.Record record = new GenericData.Record(s);
        s.getFields().forEach(f -> record.put(f.pos(), sample(f.schema())));
        yield record;
      }
      case ENUM -> new GenericData.EnumSymbol(s, s.getEnumSymbols().get(0));
      case ARRAY -> new GenericData.Array<>(0, s);
      case MAP -> new HashMap<String, Object>();
      case UNION -> sample(s.getTypes().get(0));
      case FIXED -> new GenericData.Fixed(s, new byte[s.getFixedSize()]);
      case STRING -> "";
      case BYTES -> ByteBuffer.allocate(0);
      case INT -> 0;
      case LONG -> 0L;
      case FLOAT -> 0f;
      case DOUBLE -> 0d;
      case BOOLEAN -> false;
      case NULL -> null;
    };
  }

  /** Each .avsc is self-contained (nested types are inlined), so a fresh parser per file. */
  static Schema parse(File avsc) throws IOException {
    return new Schema.Parser().parse(avsc);
  }

  static byte[] toBytes(ByteBuffer buffer) {
    byte[] bytes = new byte[buffer.remaining()];
    buffer.get(bytes);
    return bytes;
  }

  /** {@code --name value} pairs; small on purpose, a real service has its own config. */
  static Map<String, String> parseArgs(String[] argv) {
    Map<String, String> args = new HashMap<>();
    for (int i = 0; i < argv.length; i += 2) {
      if (!argv[i].startsWith("--") || i + 1 >= argv.length) {
        throw new IllegalArgumentException("expected --name value pairs, got: " + argv[i]);
      }
      args.put(argv[i].substring(2), argv[i + 1]);
    }
    return args;
  }
}
