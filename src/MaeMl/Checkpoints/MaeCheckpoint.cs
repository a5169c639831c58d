using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using MaeMl.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MaeMl.Checkpoints;

/// <summary>
/// MaeMl's own checkpoint file (<c>.maeml</c>): the model configuration, the training state (epoch, step, seed,
/// anything the trainer records), the model weights (TorchSharp format, official state-dict names) and, optionally,
/// the optimizer state. Written atomically. Layout: "MAEML" + version byte, int32 JSON length, JSON header,
/// int64 length + model bytes, int64 length + optimizer bytes (0 when absent).
/// For PyTorch interchange use the official .pth / safetensors formats (see the Interop folder).
/// </summary>
public static class MaeCheckpoint
{
    const byte FormatVersion = 1;
    static readonly byte[] Magic = "MAEML"u8.ToArray();
    public const string Extension = ".maeml";

    /// <summary>Contents of the JSON header.</summary>
    public sealed record Header(MaeConfig Config, JsonObject Training, bool HasOptimizer);

    public static void Save(string path, MaskedAutoencoderViT model, JsonObject? training = null, OptimizerHelper? optimizer = null)
    {
        var header = new JsonObject
        {
            ["format"] = "maeml-checkpoint",
            ["format_version"] = FormatVersion,
            ["config"] = JsonSerializer.SerializeToNode(model.Config),
            ["training"] = training?.DeepClone() ?? new JsonObject(),
            ["has_optimizer"] = optimizer is not null,
        };
        Write(path, header, model, optimizer);
    }

    /// <summary>Writes the file layout (magic, JSON header, model section, optimizer section) atomically; shared by <see cref="ClassifierCheckpoint"/>.</summary>
    internal static void Write(string path, JsonObject header, nn.Module model, OptimizerHelper? optimizer)
    {
        AtomicFile.Write(path, stream =>
        {
            using var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
            writer.Write(Magic);
            writer.Write(FormatVersion);
            var json = Encoding.UTF8.GetBytes(header.ToJsonString());
            writer.Write(json.Length);
            writer.Write(json);
            WriteSection(writer, w => model.save(w));
            if (optimizer is null) writer.Write(0L);
            else WriteSection(writer, w => optimizer.save_state_dict(w));
        });
    }

    static void WriteSection(BinaryWriter writer, Action<BinaryWriter> body)
    {
        using var buffer = new MemoryStream();
        using (var inner = new BinaryWriter(buffer, Encoding.UTF8, leaveOpen: true)) body(inner);
        writer.Write(buffer.Length);
        buffer.Position = 0;
        buffer.CopyTo(writer.BaseStream);
    }

    /// <summary>True when the file starts with the MaeMl checkpoint magic.</summary>
    public static bool IsCheckpoint(string path)
    {
        if (!File.Exists(path)) return false;
        using var stream = File.OpenRead(path);
        var head = new byte[Magic.Length];
        return stream.Read(head) == head.Length && head.AsSpan().SequenceEqual(Magic);
    }

    public static Header ReadHeader(string path)
    {
        using var reader = Open(path);
        return ReadHeader(reader, path);
    }

    /// <summary>A new model of the stored configuration with the stored weights.</summary>
    public static MaskedAutoencoderViT LoadModel(string path)
    {
        using var reader = Open(path);
        var header = ReadHeader(reader, path);
        var model = new MaskedAutoencoderViT(header.Config);
        ReadModel(reader, path, model);
        return model;
    }

    /// <summary>Restores weights (and optimizer state, when given and stored) into existing objects; returns the header.</summary>
    public static Header LoadInto(string path, MaskedAutoencoderViT model, OptimizerHelper? optimizer = null)
    {
        using var reader = Open(path);
        var header = ReadHeader(reader, path);
        if (header.Config with { DropPath = model.Config.DropPath } != model.Config with { DropPath = model.Config.DropPath })
            throw new InvalidDataException($"Checkpoint '{path}' holds a different architecture ({Describe(header.Config)}) than the model ({Describe(model.Config)})");
        ReadSections(reader, path, model, optimizer);
        return header;
    }

    static string Describe(MaeConfig c) => $"img {c.ImageSize}, patch {c.PatchSize}, enc {c.EmbedDim}x{c.Depth}/{c.NumHeads}h, dec {c.DecoderEmbedDim}x{c.DecoderDepth}/{c.DecoderNumHeads}h";

    static BinaryReader Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Checkpoint '{path}' does not exist", path);
        return new BinaryReader(File.OpenRead(path), Encoding.UTF8);
    }

    static Header ReadHeader(BinaryReader reader, string path)
    {
        var node = ReadHeaderJson(reader, path);
        if (node["format"]?.GetValue<string>() == ClassifierCheckpoint.FormatName)
            throw new InvalidDataException($"'{path}' is a fine-tuned classifier checkpoint, not a MAE: load it with ClassifierCheckpoint or MaeModelFile.LoadClassifier");
        try
        {
            var config = node["config"].Deserialize<MaeConfig>() ?? throw new InvalidDataException($"'{path}': no model configuration");
            return new Header(config, node["training"]?.AsObject() ?? new JsonObject(), node["has_optimizer"]?.GetValue<bool>() ?? false);
        }
        catch (JsonException e) { throw new InvalidDataException($"Checkpoint '{path}' has a corrupt header: {e.Message}"); }
    }

    /// <summary>Checks the magic and version and returns the JSON header.</summary>
    internal static JsonObject ReadHeaderJson(BinaryReader reader, string path)
    {
        try
        {
            var magic = reader.ReadBytes(Magic.Length);
            if (!magic.AsSpan().SequenceEqual(Magic))
                throw new InvalidDataException($"'{path}' is not a MaeMl checkpoint (for PyTorch .pth or safetensors files use MaeModelFile.Load)");
            var version = reader.ReadByte();
            if (version > FormatVersion) throw new InvalidDataException($"'{path}' was written by a newer MaeMl (format {version}); this one reads format {FormatVersion}");
            var json = reader.ReadBytes(reader.ReadInt32());
            return JsonNode.Parse(json)!.AsObject();
        }
        catch (EndOfStreamException) { throw new InvalidDataException($"Checkpoint '{path}' is truncated (header)"); }
        catch (JsonException e) { throw new InvalidDataException($"Checkpoint '{path}' has a corrupt header: {e.Message}"); }
    }

    /// <summary>Reads the model section into <paramref name="model"/> (strict), then the optimizer section into <paramref name="optimizer"/> when both exist.</summary>
    internal static void ReadSections(BinaryReader reader, string path, nn.Module model, OptimizerHelper? optimizer)
    {
        ReadModel(reader, path, model);
        long optLength = reader.ReadInt64();
        if (optimizer is not null && optLength > 0)
        {
            var bytes = reader.ReadBytes(checked((int)optLength));
            if (bytes.Length != optLength) throw new InvalidDataException($"Checkpoint '{path}' is truncated (optimizer state)");
            using var ms = new BinaryReader(new MemoryStream(bytes));
            optimizer.load_state_dict(ms);
        }
    }

    internal static BinaryReader OpenFile(string path) => Open(path);

    static void ReadModel(BinaryReader reader, string path, nn.Module model)
    {
        try
        {
            long length = reader.ReadInt64();
            var bytes = reader.ReadBytes(checked((int)length));
            if (bytes.Length != length) throw new InvalidDataException($"Checkpoint '{path}' is truncated (model weights)");
            using var ms = new BinaryReader(new MemoryStream(bytes));
            model.load(ms, strict: true);
        }
        catch (EndOfStreamException) { throw new InvalidDataException($"Checkpoint '{path}' is truncated (model weights)"); }
    }
}
