using MaeMl.Checkpoints;
using MaeMl.Model;
using Google.Protobuf;
using Onnx;
using TorchSharp;
using static MaeMl.Onnx.OnnxGraphBuilder;
using static TorchSharp.torch;
using MaeMl.Files;

namespace MaeMl.Onnx;

/// <summary>
/// Writes the ViT encoder of a MAE (or fine-tuned ViT) as an ONNX graph: preprocessing (optional), patch projection as a
/// stride-p Conv, the position table and cls token, the pre-norm blocks (LayerNormalization, fused qkv MatMul, softmax
/// attention with scale head_dim^-0.5, exact erf GELU), the final norm and the chosen poolings. The batch dimension is
/// dynamic (<c>batch</c>); weights are initializers. Works from a state dict with the official key names
/// (<c>patch_embed.proj</c>, <c>cls_token</c>, <c>pos_embed</c>, <c>blocks.N.*</c>, <c>norm</c> and/or <c>fc_norm</c>),
/// so <see cref="MaskedAutoencoderViT"/> and <see cref="VisionTransformer"/> weights export alike; decoder and head keys are ignored.
/// </summary>
public static class VitEncoderOnnxExporter
{
    /// <summary>Exports the encoder of a MAE model to <paramref name="path"/> (written atomically).</summary>
    public static ModelProto Export(MaskedAutoencoderViT model, string path, VitEncoderOnnxOptions? options = null)
    {
        var onnx = Build(model.state_dict(), model.Config, options);
        Save(onnx, path);
        return onnx;
    }

    /// <summary>Exports the encoder of a fine-tuned ViT to <paramref name="path"/> (<see cref="BuildEncoder"/>).</summary>
    public static ModelProto Export(VisionTransformer model, string path, VitEncoderOnnxOptions? options = null)
    {
        var onnx = BuildEncoder(model, options);
        Save(onnx, path);
        return onnx;
    }

    /// <summary>The graph <see cref="Export(VisionTransformer, string, VitEncoderOnnxOptions?)"/> writes: the encoder of a fine-tuned ViT,
    /// the head left out unless <see cref="VitEncoderOnnxOptions.IncludeHead"/> is set (see <see cref="ExportClassifier"/>). Without
    /// options, the outputs its weights have: a global-pool classifier (<c>fc_norm</c>, no final <c>norm</c>) the mean features its
    /// head reads, a cls-token one every pooling.</summary>
    public static ModelProto BuildEncoder(VisionTransformer model, VitEncoderOnnxOptions? options = null) =>
        Build(model.state_dict(), model.Config.Encoder,
            options ?? (model.Config.GlobalPool ? new VitEncoderOnnxOptions { Poolings = [EncoderPooling.Mean] } : null));

    /// <summary>Exports a fine-tuned classifier, encoder and head, to <paramref name="path"/>: outputs <see cref="EncoderOnnxNames.Logits"/>,
    /// <see cref="EncoderOnnxNames.Probabilities"/> and the pooled features the head reads.</summary>
    public static ModelProto ExportClassifier(VisionTransformer model, string path, VitEncoderOnnxOptions? options = null)
    {
        var onnx = BuildClassifier(model, options);
        Save(onnx, path);
        return onnx;
    }

    /// <summary>The graph <see cref="ExportClassifier"/> writes: encoder + head with the classifier's own pooling (the options' poolings and
    /// <see cref="VitEncoderOnnxOptions.IncludeHead"/> are set from the model).</summary>
    public static ModelProto BuildClassifier(VisionTransformer model, VitEncoderOnnxOptions? options = null)
    {
        if (model.Head is null) throw new ArgumentException("The classifier has no head (NumClasses is 0): export it with Export");
        var pooling = model.Config.GlobalPool ? EncoderPooling.Mean : EncoderPooling.Cls;
        return Build(model.state_dict(), model.Config.Encoder, (options ?? new VitEncoderOnnxOptions()) with { IncludeHead = true, Poolings = [pooling] });
    }

    /// <summary>The <c>maeml.task</c> of an export with the head: <c>image_classification</c>.</summary>
    public const string ClassifierTask = "image_classification";

    /// <summary>Writes an ONNX model to a file atomically.</summary>
    public static void Save(ModelProto model, string path) => AtomicFile.Write(path, stream => model.WriteTo(stream));

    /// <summary>Builds the encoder graph from weights by official state-dict name and the architecture.</summary>
    /// <exception cref="ArgumentException">A weight is missing or has the wrong shape (the message names it), or the options do not fit.</exception>
    public static ModelProto Build(IReadOnlyDictionary<string, Tensor> stateDict, MaeConfig config, VitEncoderOnnxOptions? options = null)
    {
        config.Validate();
        options ??= new VitEncoderOnnxOptions();
        if (options.Opset < 17) throw new ArgumentException($"Opset {options.Opset} is too old: the encoder needs opset 17 or newer (LayerNormalization)");
        if (options.Poolings.Count == 0) throw new ArgumentException("Choose at least one pooling to export");
        bool hasFcNorm = stateDict.ContainsKey("fc_norm.weight");
        var headPooling = hasFcNorm ? EncoderPooling.Mean : EncoderPooling.Cls;
        var poolings = options.Poolings.Concat(options.IncludeHead ? [headPooling] : []).Distinct().ToArray();
        int c = config.InChans, s = config.ImageSize, sh = config.InputSize.Height, p = config.PatchSize, d = config.EmbedDim, l = config.NumPatches, heads = config.NumHeads;
        int hd = d / heads, hidden = (int)(d * config.MlpRatio);
        var eps = (float)config.LayerNormEps;
        var w = new Weights(stateDict);
        var g = new OnnxGraphBuilder("mae_vit_encoder");

        // ---- input and preprocessing
        string input, x;
        if (options.IncludePreprocessing)
        {
            if (options.Mean.Length != c || options.Std.Length != c)
                throw new ArgumentException($"Preprocessing needs {c} mean and std values (one per input channel), got {options.Mean.Length} and {options.Std.Length}");
            input = g.Input(EncoderOnnxNames.Pixels, "batch", c, sh, s);
            x = g.Node("Div", [input, g.Scalar("pixel_max", 255f)], "scaled_pixels");
            x = g.Node("Sub", [x, g.Initializer("pixel_mean", options.Mean, 1, c, 1, 1)], "centered_pixels");
            x = g.Node("Div", [x, g.Initializer("pixel_std", options.Std, 1, c, 1, 1)], "normalized_pixels");
        }
        else
        {
            input = g.Input(EncoderOnnxNames.NormalizedPixels, "batch", c, sh, s);
            x = input;
        }

        // ---- patch embedding, position table, cls token
        x = g.Node("Conv", [x, w.Init(g, "patch_embed.proj.weight", d, c, p, p), w.Init(g, "patch_embed.proj.bias", d)], "patch_embed",
            Ints("kernel_shape", p, p), Ints("strides", p, p));                                          // [N, D, h, w]
        x = g.Node("Reshape", [x, g.Int64s("shape_n_d_l", [0, d, -1])], "patch_embed_flat");              // [N, D, L]
        x = g.Node("Transpose", [x], "patch_tokens", Ints("perm", 0, 2, 1));                             // [N, L, D]
        var pos = w.Get("pos_embed", 1, 1 + l, d);
        x = g.Node("Add", [x, g.Initializer("pos_embed_patches", pos.AsSpan(d), 1, l, d)], "patch_tokens_pos");
        var cls = w.Get("cls_token", 1, 1, d);
        for (int i = 0; i < d; i++) cls[i] += pos[i];                                                      // cls_token + pos_embed[:, :1]
        var batch = g.Node("Shape", [input], "batch_size", Attr("start", 0L), Attr("end", 1L));          // [1] = N
        var clsShape = g.Node("Concat", [batch, g.Int64s("ones_1_1", [1, 1])], "cls_shape", Attr("axis", 0L));
        var clsTokens = g.Node("Expand", [g.Initializer("cls_token_pos", cls, 1, 1, d), clsShape], "cls_tokens");
        x = g.Node("Concat", [clsTokens, x], "tokens_0", Attr("axis", 1L));                              // [N, 1+L, D]

        // ---- transformer blocks
        var qkvShape = g.Int64s("shape_qkv", [0, 0, 3, heads, hd]);
        var mergeShape = g.Int64s("shape_merge_heads", [0, 0, d]);
        var idx = Enumerable.Range(0, 3).Select(i => g.Int64s($"index_{i}", [i], scalar: true)).ToArray();
        var scale = g.Scalar("attn_scale", (float)Math.Pow(hd, -0.5));
        var half = g.Scalar("half", 0.5f);
        var one = g.Scalar("one", 1f);
        var invSqrt2 = g.Scalar("inv_sqrt2", (float)(1 / Math.Sqrt(2)));
        for (int b = 0; b < config.Depth; b++)
        {
            var pre = $"blocks.{b}";
            var h = LayerNorm(g, w, x, $"{pre}.norm1", d, eps);
            h = Linear(g, w, h, $"{pre}.attn.qkv", d, 3 * d);                                               // [N, T, 3D]
            h = g.Node("Reshape", [h, qkvShape], $"{pre}.attn.qkv_split");                                  // [N, T, 3, H, hd]
            h = g.Node("Transpose", [h], $"{pre}.attn.qkv_heads", Ints("perm", 2, 0, 3, 1, 4));            // [3, N, H, T, hd]
            var q = g.Node("Gather", [h, idx[0]], $"{pre}.attn.q", Attr("axis", 0L));
            var k = g.Node("Gather", [h, idx[1]], $"{pre}.attn.k", Attr("axis", 0L));
            var v = g.Node("Gather", [h, idx[2]], $"{pre}.attn.v", Attr("axis", 0L));
            q = g.Node("Mul", [q, scale], $"{pre}.attn.q_scaled");
            var kt = g.Node("Transpose", [k], $"{pre}.attn.k_t", Ints("perm", 0, 1, 3, 2));
            var att = g.Node("MatMul", [q, kt], $"{pre}.attn.scores");                                      // [N, H, T, T]
            att = g.Node("Softmax", [att], $"{pre}.attn.probs", Attr("axis", -1L));
            var o = g.Node("MatMul", [att, v], $"{pre}.attn.context");                                      // [N, H, T, hd]
            o = g.Node("Transpose", [o], $"{pre}.attn.context_t", Ints("perm", 0, 2, 1, 3));               // [N, T, H, hd]
            o = g.Node("Reshape", [o, mergeShape], $"{pre}.attn.merged");                                   // [N, T, D]
            o = Linear(g, w, o, $"{pre}.attn.proj", d, d);
            x = g.Node("Add", [x, o], $"{pre}.residual1");

            h = LayerNorm(g, w, x, $"{pre}.norm2", d, eps);
            h = Linear(g, w, h, $"{pre}.mlp.fc1", d, hidden);
            var e = g.Node("Mul", [h, invSqrt2], $"{pre}.mlp.gelu_scaled");                                 // exact GELU:
            e = g.Node("Erf", [e], $"{pre}.mlp.gelu_erf");                                                  // x * 0.5 * (1 + erf(x / sqrt 2))
            e = g.Node("Add", [e, one], $"{pre}.mlp.gelu_erf1");
            h = g.Node("Mul", [h, e], $"{pre}.mlp.gelu_mul");
            h = g.Node("Mul", [h, half], $"{pre}.mlp.gelu");
            h = Linear(g, w, h, $"{pre}.mlp.fc2", hidden, d);
            x = g.Node("Add", [x, h], $"{pre}.residual2");
        }

        // ---- final norm and poolings
        bool needNorm = poolings.Any(pl => pl != EncoderPooling.Mean) || !hasFcNorm;
        if (needNorm && !w.Has("norm.weight"))
            throw new ArgumentException($"The weights have no final 'norm' (a global-pool fine-tuned ViT has 'fc_norm' instead): export them with pooling {EncoderPooling.Mean} only");
        var normed = needNorm ? LayerNorm(g, w, x, "norm", d, eps) : null;
        var pooled = new Dictionary<EncoderPooling, string>();
        foreach (var pooling in poolings)
        {
            string output;
            object[] dims;
            switch (pooling)
            {
                case EncoderPooling.Cls:
                    output = g.Node("Gather", [normed!, idx[0]], "cls_embedding", Attr("axis", 1L));
                    dims = ["batch", d];
                    break;
                case EncoderPooling.Tokens:
                    output = normed!;
                    dims = ["batch", 1 + l, d];
                    break;
                case EncoderPooling.Mean:
                    var axes1 = g.Int64s("axis_1", [1]);
                    var patches = g.Node("Slice", [hasFcNorm ? x : normed!, g.Int64s("slice_start_1", [1]), g.Int64s("slice_end_max", [long.MaxValue]), axes1], "patch_tokens_final");
                    output = options.Opset >= 18   // axes became an input in opset 18
                        ? g.Node("ReduceMean", [patches, axes1], "patch_mean", Attr("keepdims", 0L))
                        : g.Node("ReduceMean", [patches], "patch_mean", Ints("axes", 1), Attr("keepdims", 0L));
                    if (hasFcNorm) output = LayerNorm(g, w, output, "fc_norm", d, eps);
                    dims = ["batch", d];
                    break;
                default: throw new ArgumentOutOfRangeException(nameof(options), pooling, "Unknown pooling");
            }
            pooled[pooling] = output;
            g.Output(output, EncoderOnnxNames.Output(pooling), dims);
        }
        int classes = 0;
        if (options.IncludeHead)
        {
            if (!stateDict.TryGetValue("head.weight", out var headWeight) || headWeight.ndim != 2)
                throw new ArgumentException("The weights have no classification head 'head.weight' [classes, D]: export a fine-tuned classifier, or leave IncludeHead off");
            classes = (int)headWeight.shape[0];
            var logits = Linear(g, w, pooled[headPooling], "head", d, classes);
            g.Output(logits, EncoderOnnxNames.Logits, "batch", classes);
            g.Output(g.Node("Softmax", [logits], "head_softmax", Attr("axis", -1L)), EncoderOnnxNames.Probabilities, "batch", classes);
        }

        var metadata = new Dictionary<string, string>
        {
            ["maeml.image_size"] = s.ToString(),
            ["maeml.patch_size"] = p.ToString(),
            ["maeml.in_chans"] = c.ToString(),
            ["maeml.embed_dim"] = d.ToString(),
            ["maeml.depth"] = config.Depth.ToString(),
            ["maeml.num_heads"] = heads.ToString(),
            ["maeml.preprocessing"] = options.IncludePreprocessing
                ? $"(x/255 - mean)/std; mean {string.Join(",", options.Mean)}; std {string.Join(",", options.Std)}" : "none",
            ["maeml.mean_pooling"] = hasFcNorm ? "fc_norm(mean(patch tokens))" : "mean(norm(patch tokens))",
        };
        if (!config.IsSquare) metadata["maeml.image_height"] = sh.ToString();   // maeml.image_size is then the width
        if (options.IncludeHead)
        {
            metadata["maeml.task"] = ClassifierTask;
            if (options.ClassNames is { } names)
            {
                if (names.Count != classes) throw new ArgumentException($"{names.Count} class names for a head of {classes} classes");
                metadata["maeml.class_names"] = System.Text.Json.JsonSerializer.Serialize(names);
            }
            metadata["maeml.num_classes"] = classes.ToString();
            metadata["maeml.head_pooling"] = headPooling.ToString().ToLowerInvariant();
        }
        return g.ToModel(options.Opset, metadata,
            $"MAE ViT encoder {d}x{config.Depth} ({heads} heads), image {(config.IsSquare ? s.ToString() : config.InputSize.ToString())}, patch {p}; outputs: {string.Join(", ", poolings.Select(EncoderOnnxNames.Output))}");
    }

    static string LayerNorm(OnnxGraphBuilder g, Weights w, string x, string name, int d, float eps) =>
        g.Node("LayerNormalization", [x, w.Init(g, $"{name}.weight", d), w.Init(g, $"{name}.bias", d)], name,
            Attr("axis", -1L), Attr("epsilon", eps));

    /// <summary>y = x W^T + b as MatMul with the transposed weight [in, out] then Add.</summary>
    static string Linear(OnnxGraphBuilder g, Weights w, string x, string name, int inFeatures, int outFeatures)
    {
        var weight = w.Get($"{name}.weight", outFeatures, inFeatures);
        var transposed = new float[weight.Length];
        for (int o = 0; o < outFeatures; o++)
            for (int i = 0; i < inFeatures; i++) transposed[i * outFeatures + o] = weight[o * inFeatures + i];
        var y = g.Node("MatMul", [x, g.Initializer($"{name}.weight_t", transposed, inFeatures, outFeatures)], $"{name}.matmul");
        return g.Node("Add", [y, w.Init(g, $"{name}.bias", outFeatures)], name);
    }

    /// <summary>Reads float weights by name, checking presence and shape.</summary>
    sealed class Weights(IReadOnlyDictionary<string, Tensor> stateDict)
    {
        public bool Has(string name) => stateDict.ContainsKey(name);

        public float[] Get(string name, params long[] shape)
        {
            if (!stateDict.TryGetValue(name, out var t))
                throw new ArgumentException($"The weights have no '{name}' (expected shape [{string.Join(", ", shape)}])");
            if (!t.shape.SequenceEqual(shape))
                throw new ArgumentException($"Weight '{name}' has shape [{string.Join(", ", t.shape)}], the configuration needs [{string.Join(", ", shape)}]");
            using var scope = NewDisposeScope();
            return t.detach().to(ScalarType.Float32, torch.CPU).contiguous().data<float>().ToArray();
        }

        public string Init(OnnxGraphBuilder g, string name, params long[] shape) => g.Initializer(name, Get(name, shape), shape);
    }
}
