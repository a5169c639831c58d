using MaeMl.Model;
using MaeMl.Onnx;
using Onnx;
using static MaeMl.Onnx.OnnxGraphBuilder;
using static TorchSharp.torch;

namespace MaeMl.Onnx;

/// <summary>
/// Writes the dense models' graphs: the ViT as <see cref="VitEncoderOnnxExporter"/> emits it (with the 0..255 preprocessing,
/// input <see cref="EncoderOnnxNames.Pixels"/>), its patch tokens reshaped to the feature map, then the simple feature
/// pyramid and head layers by state-dict name (Conv, ConvTranspose, LayerNorm2d as Transpose + LayerNormalization,
/// exact GELU, MaxPool, GroupNorm as InstanceNormalization on grouped channels, bilinear Resize with half-pixel centres).
/// </summary>
internal sealed class DenseOnnxWriter
{
    readonly Dictionary<string, Tensor> state;

    /// <summary>The ONNX model being written.</summary>
    public ModelProto Model { get; }
    /// <summary>The graph builder of <see cref="Model"/>.</summary>
    public OnnxGraphBuilder G { get; }
    /// <summary>The backbone's architecture.</summary>
    public MaeConfig Encoder { get; }

    readonly string? featureMap;   // the ViTDet backbone's map, written by the constructor
    readonly string? attentionNote;

    /// <summary>Starts from the ViT whose weights are <c>{vitPrefix}patch_embed...</c> in <paramref name="stateDict"/>, attending as
    /// <paramref name="attention"/> says (ViTDet's windows and relative positions: <see cref="VitDetOnnx"/>; null = global).</summary>
    public DenseOnnxWriter(IReadOnlyDictionary<string, Tensor> stateDict, string vitPrefix, MaeConfig encoder, int opset = 17, BackboneAttention? attention = null)
    {
        state = stateDict.ToDictionary(kv => kv.Key, kv => kv.Value);
        Encoder = encoder;
        if (attention is { TokenGrid: true })
        {
            var options = new VitEncoderOnnxOptions();
            G = new OnnxGraphBuilder("maeml_vitdet");
            var (width, height) = encoder.InputSize;
            int c = encoder.InChans;
            var input = G.Input(EncoderOnnxNames.Pixels, "batch", c, height, width);
            var x = G.Node("Div", [input, G.Scalar("pixel_max", 255f)], "scaled_pixels");
            x = G.Node("Sub", [x, G.Initializer("pixel_mean", options.Mean, 1, c, 1, 1)], "centered_pixels");
            x = G.Node("Div", [x, G.Initializer("pixel_std", options.Std, 1, c, 1, 1)], "normalized_pixels");
            Model = G.ToModel(opset);
            featureMap = VitDetOnnx.FeatureMap(this, state, vitPrefix, x, encoder, attention);
            attentionNote = attention.Describe();
            return;
        }
        var vit = stateDict.Where(kv => kv.Key.StartsWith(vitPrefix, StringComparison.Ordinal)).ToDictionary(kv => kv.Key[vitPrefix.Length..], kv => kv.Value);
        Model = VitEncoderOnnxExporter.Build(vit, encoder, new VitEncoderOnnxOptions { Poolings = [EncoderPooling.Tokens], IncludePreprocessing = true, Opset = opset });
        Model.Graph.Output.Clear();
        Model.MetadataProps.Clear();
        G = new OnnxGraphBuilder(Model.Graph);
    }

    /// <summary>The ViT's last feature map [N, D, gh, gw] (patch tokens after the final norm).</summary>
    public string FeatureMap()
    {
        if (featureMap is not null) return featureMap;
        int d = Encoder.EmbedDim, gh = Encoder.GridHeight, gw = Encoder.GridWidth;
        var patches = G.Node("Slice", [EncoderOnnxNames.Output(EncoderPooling.Tokens), G.Int64s("dense_start_1", [1]), G.Int64s("dense_end_max", [long.MaxValue]), G.Int64s("dense_axis_1", [1])], "vit_patch_tokens");
        var t = G.Node("Transpose", [patches], "vit_tokens_t", Ints("perm", 0, 2, 1));
        return G.Node("Reshape", [t, G.Int64s("vit_map_shape", [0, d, gh, gw])], "vit_feature_map");
    }

    float[] Get(string name, out long[] shape)
    {
        if (!state.TryGetValue(name, out var t)) throw new ArgumentException($"The weights have no '{name}'");
        shape = t.shape;
        using var scope = NewDisposeScope();
        return t.detach().to(ScalarType.Float32, CPU).contiguous().data<float>().ToArray();
    }

    readonly Dictionary<string, string> initializers = new();

    /// <summary>The initializer of a weight (written once, shared by every use, e.g. a head applied to each level).</summary>
    public string Init(string name)
    {
        if (initializers.TryGetValue(name, out var existing)) return existing;
        var v = Get(name, out var shape);
        return initializers[name] = G.Initializer(name, v, shape);
    }
    /// <summary>A weight reshaped to <paramref name="shape"/> (written once).</summary>
    public string Init(string name, params long[] shape)
    {
        var key = $"{name}@{string.Join("x", shape)}";
        if (initializers.TryGetValue(key, out var existing)) return existing;
        return initializers[key] = G.Initializer(name, Get(name, out _), shape);
    }

    /// <summary>True when the weights hold a tensor of that state-dict name.</summary>
    public bool Has(string name) => state.ContainsKey(name);

    /// <summary>A Conv node with the weights (and bias, when present) of <paramref name="name"/>; returns its output.</summary>
    public string Conv(string x, string name, int padding = 0)
    {
        var shape = state.TryGetValue($"{name}.weight", out var t) ? t.shape : throw new ArgumentException($"The weights have no '{name}.weight'");
        var inputs = new List<string> { x, Init($"{name}.weight") };
        if (Has($"{name}.bias")) inputs.Add(Init($"{name}.bias"));
        return G.Node("Conv", inputs.ToArray(), name, Ints("kernel_shape", shape[2], shape[3]), Ints("pads", padding, padding, padding, padding));
    }

    /// <summary>y = x W^T + b over the last axis with the weights of <paramref name="name"/> [out, in] (MatMul with the transposed weight, then Add).</summary>
    public string Linear(string x, string name)
    {
        var weight = Get($"{name}.weight", out var shape);
        long outFeatures = shape[0], inFeatures = shape[1];
        var transposed = new float[weight.Length];
        for (long o = 0; o < outFeatures; o++)
            for (long i = 0; i < inFeatures; i++) transposed[i * outFeatures + o] = weight[o * inFeatures + i];
        var y = G.Node("MatMul", [x, G.Initializer($"{name}.weight_t", transposed, inFeatures, outFeatures)], $"{name}.matmul");
        return G.Node("Add", [y, Init($"{name}.bias")], name);
    }

    /// <summary>A 2x2 stride-2 ConvTranspose node with the weights of <paramref name="name"/>; returns its output.</summary>
    public string ConvTranspose2x2(string x, string name) =>
        G.Node("ConvTranspose", [x, Init($"{name}.weight"), Init($"{name}.bias")], name, Ints("kernel_shape", 2, 2), Ints("strides", 2, 2));

    /// <summary>LayerNorm over the channels of [N, C, H, W] (detectron2's LayerNorm2d) with the weights of <paramref name="name"/>.</summary>
    public string LayerNorm2d(string x, string name, float eps = 1e-6f)
    {
        var nhwc = G.Node("Transpose", [x], $"{name}.nhwc", Ints("perm", 0, 2, 3, 1));
        var normed = G.Node("LayerNormalization", [nhwc, Init($"{name}.weight"), Init($"{name}.bias")], $"{name}.ln", Attr("axis", -1L), Attr("epsilon", eps));
        return G.Node("Transpose", [normed], name, Ints("perm", 0, 3, 1, 2));
    }

    /// <summary>Exact (erf) GELU.</summary>
    public string Gelu(string x, string name)
    {
        var e = G.Node("Mul", [x, G.Scalar($"{name}.inv_sqrt2", (float)(1 / Math.Sqrt(2)))], $"{name}.scaled");
        e = G.Node("Erf", [e], $"{name}.erf");
        e = G.Node("Add", [e, G.Scalar($"{name}.one", 1f)], $"{name}.erf1");
        e = G.Node("Mul", [x, e], $"{name}.mul");
        return G.Node("Mul", [e, G.Scalar($"{name}.half", 0.5f)], name);
    }

    /// <summary>GroupNorm (eps 1e-5) as InstanceNormalization over [N, groups, C/groups*H*W], then the per-channel affine.</summary>
    public string GroupNorm(string x, string name, int groups, int channels)
    {
        var shape = G.Node("Shape", [x], $"{name}.shape");
        var grouped = G.Node("Reshape", [x, G.Int64s($"{name}.grouped_shape", [0, groups, -1])], $"{name}.grouped");
        var normed = G.Node("InstanceNormalization", [grouped, G.Initializer($"{name}.ones", Enumerable.Repeat(1f, groups).ToArray(), groups),
            G.Initializer($"{name}.zeros", new float[groups], groups)], $"{name}.in", Attr("epsilon", 1e-5f));
        var back = G.Node("Reshape", [normed, shape], $"{name}.nchw");
        var scaled = G.Node("Mul", [back, Init($"{name}.weight", channels, 1, 1)], $"{name}.scaled");
        return G.Node("Add", [scaled, Init($"{name}.bias", channels, 1, 1)], name);
    }

    /// <summary>2x2 stride-2 max pooling.</summary>
    public string MaxPool2x2(string x, string name) => G.Node("MaxPool", [x], name, Ints("kernel_shape", 2, 2), Ints("strides", 2, 2));

    /// <summary>Bilinear upsampling by a whole factor (PyTorch <c>interpolate(..., mode='bilinear', align_corners=False)</c>).</summary>
    public string Upsample(string x, string name, float factor) =>
        G.Node("Resize", [x, "", G.Initializer($"{name}.scales", new[] { 1f, 1f, factor, factor }, 4)], name,
            new AttributeProto { Name = "mode", Type = AttributeProto.Types.AttributeType.String, S = Google.Protobuf.ByteString.CopyFromUtf8("linear") },
            new AttributeProto { Name = "coordinate_transformation_mode", Type = AttributeProto.Types.AttributeType.String, S = Google.Protobuf.ByteString.CopyFromUtf8("half_pixel") });

    /// <summary>ReLU.</summary>
    public string Relu(string x, string name) => G.Node("Relu", [x], name);

    /// <summary>Bilinear resizing to <paramref name="height"/> x <paramref name="width"/> (PyTorch <c>interpolate(x, size, mode='bilinear',
    /// align_corners=False)</c>, any ratio, up or down): Resize by sizes, the batch and channels taken from x.</summary>
    public string ResizeTo(string x, string name, long height, long width)
    {
        var leading = G.Node("Shape", [x], $"{name}.nc", Attr("start", 0L), Attr("end", 2L));
        var sizes = G.Node("Concat", [leading, G.Int64s($"{name}.hw", [height, width])], $"{name}.sizes", Attr("axis", 0L));
        return G.Node("Resize", [x, "", "", sizes], name,
            new AttributeProto { Name = "mode", Type = AttributeProto.Types.AttributeType.String, S = Google.Protobuf.ByteString.CopyFromUtf8("linear") },
            new AttributeProto { Name = "coordinate_transformation_mode", Type = AttributeProto.Types.AttributeType.String, S = Google.Protobuf.ByteString.CopyFromUtf8("half_pixel") });
    }

    /// <summary>PyTorch's adaptive average pooling of <paramref name="size"/> values to <paramref name="bins"/> as a row-major
    /// [bins, size] matrix: bin i averages the window [floor(i size / bins), ceil((i + 1) size / bins)) (windows overlap when
    /// size is not a multiple of bins, and repeat values when bins exceed size).</summary>
    public static float[] AdaptivePoolMatrix(int size, int bins)
    {
        if (size < 1 || bins < 1) throw new ArgumentException($"Adaptive pooling of {size} values to {bins} bins: both must be positive");
        var m = new float[bins * size];
        for (int i = 0; i < bins; i++)
        {
            int start = (int)((long)i * size / bins), end = (int)(((long)(i + 1) * size + bins - 1) / bins);
            for (int j = start; j < end; j++) m[i * size + j] = 1f / (end - start);
        }
        return m;
    }

    /// <summary>Adaptive average pooling (PyTorch <c>adaptive_avg_pool2d</c>) of x [N, C, <paramref name="height"/>, <paramref name="width"/>]
    /// to [N, C, bins, bins] as two MatMuls with constant averaging matrices, P_h x P_w^T (exact windows for any size).</summary>
    public string AdaptiveAvgPool2d(string x, string name, int height, int width, int bins)
    {
        var ph = G.Initializer($"{name}.rows", AdaptivePoolMatrix(height, bins), bins, height);                 // [b, H]
        var pwT = Transposed(AdaptivePoolMatrix(width, bins), bins, width);
        var rows = G.Node("MatMul", [ph, x], $"{name}.pooled_rows");                                          // [N, C, b, W]
        return G.Node("MatMul", [rows, G.Initializer($"{name}.cols", pwT, width, bins)], name);             // [N, C, b, b]
    }

    static float[] Transposed(float[] m, int rows, int cols)
    {
        var t = new float[m.Length];
        for (int r = 0; r < rows; r++) for (int c = 0; c < cols; c++) t[c * rows + r] = m[r * cols + c];
        return t;
    }

    /// <summary>Height and width of each simple-feature-pyramid level (finest first) on a <paramref name="gridHeight"/> x
    /// <paramref name="gridWidth"/> patch grid: scale s >= 1 multiplies the grid (transposed convs), 0.5 halves it rounding an odd side
    /// down (MaxPool2d(2, 2)).</summary>
    public static (int Height, int Width)[] PyramidLevelSizes(int gridHeight, int gridWidth, IReadOnlyList<double> scales) =>
        scales.Select(s => ((int)Math.Floor(gridHeight * s), (int)Math.Floor(gridWidth * s))).ToArray();

    /// <summary>The simple feature pyramid under <paramref name="prefix"/> (e.g. <c>backbone.</c>) on the ViT map: one output per scale, finest first.</summary>
    public string[] Pyramid(string map, string prefix, IReadOnlyList<double> scales, int[] strides)
    {
        var outputs = new string[scales.Count];
        for (int i = 0; i < scales.Count; i++)
        {
            var name = $"{prefix}simfp_{(int)Math.Round(Math.Log2(strides[i]))}";
            var x = map;
            int k = 0;
            if (scales[i] == 4.0)
            {
                x = ConvTranspose2x2(x, $"{name}.0");
                x = LayerNorm2d(x, $"{name}.1");
                x = Gelu(x, $"{name}.2");
                x = ConvTranspose2x2(x, $"{name}.3");
                k = 4;
            }
            else if (scales[i] == 2.0) { x = ConvTranspose2x2(x, $"{name}.0"); k = 1; }
            else if (scales[i] == 0.5) { x = MaxPool2x2(x, $"{name}.0"); k = 1; }
            x = Conv(x, $"{name}.{k}");
            x = LayerNorm2d(x, $"{name}.{k + 1}");
            x = Conv(x, $"{name}.{k + 2}", padding: 1);
            outputs[i] = LayerNorm2d(x, $"{name}.{k + 3}");
        }
        return outputs;
    }

    /// <summary>Sets metadata and the doc string and writes the model atomically.</summary>
    public void Save(string path, IReadOnlyDictionary<string, string> metadata, string doc)
    {
        Finish(metadata, doc);
        VitEncoderOnnxExporter.Save(Model, path);
    }

    /// <summary>Sets metadata and the doc string without writing the model (for callers that keep it in memory).</summary>
    public ModelProto Finish(IReadOnlyDictionary<string, string> metadata, string doc)
    {
        foreach (var (key, value) in metadata) Model.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });
        if (attentionNote is not null) Model.MetadataProps.Add(new StringStringEntryProto { Key = "maeml.backbone_attention", Value = attentionNote });
        Model.DocString = doc;
        return Model;
    }
}
