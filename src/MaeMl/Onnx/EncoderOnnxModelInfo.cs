using Google.Protobuf;
using Onnx;

namespace MaeMl.Onnx;

/// <summary>
/// What a consumer needs to know about an encoder ONNX file written by <see cref="VitEncoderOnnxExporter"/>: its input
/// (name, channels, image size), the poolings it outputs and their sizes. <see cref="Read"/> checks the file and
/// reports problems naming it.
/// </summary>
public sealed record EncoderOnnxModelInfo(string ModelFile, string InputName, int InChans, int ImageSize, IReadOnlyDictionary<EncoderPooling, long[]> Outputs)
{
    /// <summary>True when the graph normalises 0..255 pixels itself (input <see cref="EncoderOnnxNames.Pixels"/>).</summary>
    public bool IncludesPreprocessing => InputName == EncoderOnnxNames.Pixels;

    /// <summary>Values per image at the input: C*H*W.</summary>
    public int PixelCount => InChans * ImageSize * ImageSize;

    /// <summary>Values per image of an output (the batch dimension excluded): D, or (1+L)*D for tokens.</summary>
    public int OutputSize(EncoderPooling pooling) => checked((int)RequireOutput(pooling).Skip(1).Aggregate(1L, (a, b) => a * b));

    /// <summary>The output's dimensions with the batch first (-1 for the dynamic batch), or an error naming the file and the poolings it has.</summary>
    public long[] RequireOutput(EncoderPooling pooling) =>
        Outputs.TryGetValue(pooling, out var dims) ? dims
        : throw new ArgumentException($"The encoder model '{ModelFile}' has no {pooling} output ('{EncoderOnnxNames.Output(pooling)}'); it has {string.Join(", ", Outputs.Keys)}. Export it with that pooling (maeml export-onnx --pooling {pooling.ToString().ToLowerInvariant()}).", nameof(pooling));

    /// <summary>Reads and checks an encoder model file.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not an ONNX model, or not a MaeMl encoder export.</exception>
    public static EncoderOnnxModelInfo Read(string modelFile)
    {
        if (string.IsNullOrWhiteSpace(modelFile)) throw new ArgumentException("The encoder model file name is empty", nameof(modelFile));
        if (!File.Exists(modelFile)) throw new FileNotFoundException($"The encoder model file '{modelFile}' does not exist", modelFile);
        ModelProto model;
        try
        {
            using var stream = File.OpenRead(modelFile);
            model = ModelProto.Parser.ParseFrom(stream);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new InvalidDataException($"'{modelFile}' is not a valid ONNX model: {e.Message}", e);
        }
        if (model.Graph is null || model.Graph.Input.Count == 0)
            throw new InvalidDataException($"'{modelFile}' is not a valid ONNX model (no graph or no inputs)");
        var inputs = model.Graph.Input.Where(i => model.Graph.Initializer.All(t => t.Name != i.Name)).ToList();
        var input = inputs.FirstOrDefault(i => i.Name is EncoderOnnxNames.Pixels or EncoderOnnxNames.NormalizedPixels)
            ?? throw new InvalidDataException($"'{modelFile}' is not a MaeMl encoder export: it has no '{EncoderOnnxNames.Pixels}' input (inputs: {string.Join(", ", inputs.Select(i => i.Name))}). Export one with 'maeml export-onnx'.");
        var inDims = Dims(input);
        if (inDims.Length != 4 || inDims[1] <= 0 || inDims[2] <= 0 || inDims[2] != inDims[3])
            throw new InvalidDataException($"'{modelFile}': input '{input.Name}' should be [batch, C, S, S], got [{string.Join(", ", inDims)}]");
        var outputs = new Dictionary<EncoderPooling, long[]>();
        foreach (var o in model.Graph.Output)
            if (EncoderOnnxNames.PoolingOf(o.Name) is { } pooling) outputs[pooling] = Dims(o);
        if (outputs.Count == 0)
            throw new InvalidDataException($"'{modelFile}' is not a MaeMl encoder export: none of its outputs ({string.Join(", ", model.Graph.Output.Select(o => o.Name))}) is mae_cls, mae_mean or mae_tokens");
        return new EncoderOnnxModelInfo(modelFile, input.Name, (int)inDims[1], (int)inDims[2], outputs);
    }

    static long[] Dims(ValueInfoProto value) =>
        value.Type?.TensorType?.Shape?.Dim.Select(d => d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue ? d.DimValue : -1).ToArray() ?? [];
}
