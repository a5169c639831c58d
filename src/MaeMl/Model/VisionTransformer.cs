using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MaeMl.Model;

/// <summary>Classifier settings on top of a MAE encoder configuration (the official <c>models_vit.py</c>), or the dense backbone.</summary>
/// <param name="Encoder">Encoder architecture (decoder fields are ignored).</param>
/// <param name="NumClasses">Classes of the linear head; 0 for no head (features only).</param>
/// <param name="GlobalPool">Mean of the patch tokens + <c>fc_norm</c> (the MAE fine-tuning default) instead of the cls token after <c>norm</c>.</param>
public sealed record VitClassifierConfig(MaeConfig Encoder, int NumClasses, bool GlobalPool = true)
{
    /// <summary>The dense backbone (ViTDet's plain <c>backbone.net</c>): no head, the final <c>norm</c> on every token, and
    /// <see cref="VisionTransformer.forward"/> returns the patch tokens as a feature map [N, D, H/p, W/p] (cls dropped).</summary>
    public bool FeatureMap { get; init; }

    /// <summary>How the backbone's blocks attend: null or <see cref="BackboneAttention.Global"/> for global attention everywhere (over
    /// cls + patches), or ViTDet's windows and relative positions (<see cref="BackboneAttention.VitDet"/>); feature-map backbones only.</summary>
    public BackboneAttention? Attention { get; init; }

    /// <summary>The dense-backbone configuration of an encoder.</summary>
    public static VitClassifierConfig Backbone(MaeConfig encoder) => Backbone(encoder, null);

    /// <summary>The dense-backbone configuration of an encoder whose blocks attend as <paramref name="attention"/> says (null = global).</summary>
    public static VitClassifierConfig Backbone(MaeConfig encoder, BackboneAttention? attention) =>
        new(encoder, 0, GlobalPool: false) { FeatureMap = true, Attention = attention };

    /// <summary>Validates the encoder and the head settings and returns this configuration; throws <see cref="ArgumentException"/>
    /// naming the bad setting.</summary>
    public VitClassifierConfig Validate()
    {
        Encoder.Validate();
        if (NumClasses < 0) throw new ArgumentException($"Invalid classifier configuration: num_classes must be >= 0, got {NumClasses}");
        if (FeatureMap && (NumClasses != 0 || GlobalPool)) throw new ArgumentException("Invalid backbone configuration: a feature-map backbone has no head and no global pooling");
        if (Attention is { } a)
        {
            a.Validate(Encoder.Depth);
            if (a.TokenGrid && !FeatureMap) throw new ArgumentException("Invalid classifier configuration: window attention and relative positions are for the dense (feature-map) backbone only");
        }
        return this;
    }
}

/// <summary>
/// The <see cref="VitEncoder{TOutput}"/> on all patches with a learnable position table, configured like timm's
/// <c>VisionTransformer</c> (the official <c>models_vit.VisionTransformer</c>, timm 0.3.2): cls-token pooling after <c>norm</c>,
/// or global (mean) pooling + <c>fc_norm</c>, and a <c>head</c>; or, with <see cref="VitClassifierConfig.FeatureMap"/>, the dense
/// backbone returning a feature map. Encoder keys are those of <see cref="MaskedAutoencoderViT"/>, so pretrained weights load one to
/// one (<see cref="LoadEncoder"/>, <see cref="FromMae"/>: the one way to take an MAE's encoder weights).
/// </summary>
public sealed class VisionTransformer : VitEncoder<Tensor>
{
    readonly LayerNorm? fc_norm;   // global pooling only
    readonly Linear? head;

    /// <summary>The configuration this model was built with.</summary>
    public VitClassifierConfig Config { get; }

    /// <summary>A model of <paramref name="config"/> (validated), initialised by <see cref="InitializeWeights"/> from torch's global RNG.</summary>
    public VisionTransformer(VitClassifierConfig config)
        : base(nameof(VisionTransformer), config.Validate().Encoder, fixedPositions: false, withNorm: !config.GlobalPool, config.Attention)
    {
        Config = config;
        var c = config.Encoder;
        if (config.GlobalPool)
        {
            fc_norm = nn.LayerNorm(c.EmbedDim, c.LayerNormEps);
            register_module(nameof(fc_norm), fc_norm);
        }
        if (config.NumClasses > 0)
        {
            head = nn.Linear(c.EmbedDim, config.NumClasses);
            register_module(nameof(head), head);
        }
        InitializeWeights();
    }

    /// <summary>The MAE encoder's init (sin-cos position table, xavier-uniform linears and patch projection, N(0, 0.02) cls token,
    /// LayerNorm 1/0), head trunc-normal(2e-5) as MAE fine-tuning. A from-scratch baseline starts where pretraining starts.</summary>
    public void InitializeWeights()
    {
        using var _ = no_grad();
        InitializeEncoderWeights();
        VitInit.XavierLinearsUnitNorms(this);
        if (head is not null)
        {
            nn.init.trunc_normal_(head.weight!, std: 2e-5);
            nn.init.zeros_(head.bias!);
        }
    }

    /// <summary>Number of blocks + 1: the layer ids used by layer-wise lr decay (embeddings are layer 0, block i is i+1).</summary>
    public int NumLayers => Config.Encoder.Depth + 1;

    /// <summary>Channels of the feature map (the embedding width).</summary>
    public int Channels => Config.Encoder.EmbedDim;

    /// <summary>Stride of the feature map in pixels (the patch size).</summary>
    public int Stride => Config.Encoder.PatchSize;

    /// <summary>Pooled, normalised features [N, D] (what the head sees).</summary>
    public Tensor ForwardFeatures(Tensor imgs)
    {
        if (Config.FeatureMap) throw new InvalidOperationException("A feature-map backbone has no pooled features: call forward");
        using var scope = NewDisposeScope();
        var x = ForwardTokens(imgs);                                              // [N, 1+L, D]
        Tensor outcome = Config.GlobalPool
            ? fc_norm!.forward(x[.., 1..].mean(new long[] { 1 }))                 // [N, D]
            : norm!.forward(x)[.., 0];
        return outcome.MoveToOuterDisposeScope();
    }

    /// <summary>Logits [N, classes], features [N, D] when there is no head, or the feature map [N, D, H/p, W/p] of a backbone (H x W the
    /// encoder's <see cref="MaeConfig.InputSize"/>; with ViTDet's attention: the patch grid through the blocks, no cls token, then the final norm).</summary>
    public override Tensor forward(Tensor imgs)
    {
        if (Config.FeatureMap)
        {
            using var scope = NewDisposeScope();
            if (BackboneAttention.TokenGrid)
                return norm!.forward(ForwardGrid(imgs)).permute(0, 3, 1, 2).contiguous().MoveToOuterDisposeScope();   // [N, D, h, w]
            var x = norm!.forward(ForwardTokens(imgs))[.., 1..];                  // [N, L, D]
            long gh = imgs.shape[2] / Stride, gw = imgs.shape[3] / Stride;        // the grid of this input (PatchEmbed checked its size)
            return x.transpose(1, 2).reshape(x.shape[0], Config.Encoder.EmbedDim, gh, gw).MoveToOuterDisposeScope();   // [N, D, gh, gw]
        }
        if (head is null) return ForwardFeatures(imgs);
        using var features = ForwardFeatures(imgs);
        return head.forward(features);
    }

    /// <summary>The classification head, or null.</summary>
    public Linear? Head => head;

    /// <summary>
    /// Copies encoder weights by official MAE name (decoder keys and tensors this model lacks, such as <c>norm</c> with global
    /// pooling, are ignored). The position table's grid rows are bicubically resized to this model's grid when it differs
    /// (<see cref="PositionEmbeddingInterpolation"/>: a square pretrained table to this model's gh x gw grid). ViTDet's relative position
    /// tables (<c>blocks.N.attn.rel_pos_h/_w</c>), which MAE weights lack, keep their zero init when absent: they are not in the returned
    /// list of the names copied.
    /// </summary>
    /// <exception cref="ArgumentException">A needed weight is missing or has another shape (the message names it).</exception>
    public IReadOnlyList<string> LoadEncoder(IReadOnlyDictionary<string, Tensor> state)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var copied = new List<string>();
        foreach (var (name, param) in named_parameters())
        {
            if (name.StartsWith("head.") || name.StartsWith("fc_norm.")) continue;
            if (!state.TryGetValue(name, out var source))
            {
                if (VitDetOps.IsRelativePosition(name)) continue;   // new in a ViTDet backbone: stays zero (detectron2's rel_pos_zero_init)
                throw new ArgumentException($"The encoder weights have no '{name}'");
            }
            var value = source;
            if (name == "pos_embed" && !source.shape.SequenceEqual(param.shape))
            {
                if (source.shape[2] != param.shape[2]) throw new ArgumentException($"'pos_embed' is [{string.Join(", ", source.shape)}], this model needs width {param.shape[2]}");
                value = PositionEmbeddingInterpolation.Interpolate(source, Config.Encoder.GridHeight, Config.Encoder.GridWidth);
            }
            if (!value.shape.SequenceEqual(param.shape))
                throw new ArgumentException($"Weight '{name}' is [{string.Join(", ", value.shape)}], this model needs [{string.Join(", ", param.shape)}]");
            param.copy_(value.to(param.dtype, param.device));
            copied.Add(name);
        }
        return copied;
    }

    /// <summary>A model of <paramref name="config"/> (its encoder's width, depth and patch size must be the MAE's; image size may
    /// differ: the position table is interpolated) with the encoder weights of <paramref name="mae"/>.</summary>
    public static VisionTransformer FromMae(MaskedAutoencoderViT mae, VitClassifierConfig config)
    {
        var model = new VisionTransformer(config);
        model.LoadEncoder(mae.state_dict().Where(kv => MaskedAutoencoderViT.IsEncoderKey(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value));
        return model;
    }
}
