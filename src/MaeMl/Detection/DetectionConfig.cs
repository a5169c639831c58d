using MaeMl.Model;

namespace MaeMl.Detection;

/// <summary>Architecture and post-processing of a <see cref="DetectionModel"/> (FCOS on ViTDet's simple feature pyramid).</summary>
/// <param name="Encoder">The ViT; <see cref="MaeConfig.ImageSize"/> is the input size (square: detection refuses a <see cref="MaeConfig.ImageHeight"/> of another value).</param>
/// <param name="NumClasses">Object classes (no background class: FCOS scores each class with a sigmoid).</param>
/// <param name="PyramidChannels">Channels of the pyramid and of the head towers (detectron2: 256).</param>
/// <param name="PyramidScales">Pyramid scales relative to the patch grid, finest first (ViTDet: 4, 2, 1, 0.5).</param>
/// <param name="HeadConvs">3x3 conv + GroupNorm + ReLU layers in each tower (FCOS: 4).</param>
public sealed record DetectionConfig(MaeConfig Encoder, int NumClasses, int PyramidChannels = 64, double[]? PyramidScales = null, int HeadConvs = 2)
{
    /// <summary>The pyramid's scales relative to the patch stride (ViTDet's 4, 2, 1, 0.5 unless <c>PyramidScales</c> says otherwise).</summary>
    public double[] Scales => PyramidScales ?? [4.0, 2.0, 1.0, 0.5];
    /// <summary>Only (location, class) scores above this become candidates (in [0, 1)).</summary>
    public float ScoreThreshold { get; init; } = 0.05f;
    /// <summary>IoU above which NMS drops the lower-scored box of the same class.</summary>
    public float NmsIoU { get; init; } = 0.6f;
    /// <summary>Detections kept per image, all classes together (the best by score after NMS).</summary>
    public int MaxDetections { get; init; } = 100;
    /// <summary>Candidates per image before NMS (the best by score, all classes together).</summary>
    public int PreNmsTopK { get; init; } = 1000;
    /// <summary>FCOS centre sampling: a location is positive only within this many strides of the box centre.</summary>
    public float CenterSampleRadius { get; init; } = 1.5f;
    /// <summary>How the ViT's blocks attend: null (files written before it was recorded) or <see cref="BackboneAttention.Global"/> for
    /// global attention, or ViTDet's windows and relative positions (<see cref="BackboneAttention.VitDet"/>).</summary>
    public BackboneAttention? Attention { get; init; }

    /// <summary>Checks the encoder and the detection settings; returns this configuration or throws <see cref="ArgumentException"/> naming the bad setting.</summary>
    public DetectionConfig Validate()
    {
        Encoder.Validate();
        if (!Encoder.IsSquare) throw new ArgumentException($"Detection takes square inputs (S x S): the encoder's input is {Encoder.InputSize}; non-square inputs are for segmentation");
        Attention?.Validate(Encoder.Depth);
        if (NumClasses < 1) throw new ArgumentException($"A detector needs at least one class, got {NumClasses}");
        if (PyramidChannels < 1 || HeadConvs < 0) throw new ArgumentException("PyramidChannels must be positive and HeadConvs non-negative");
        if (!(ScoreThreshold >= 0 && ScoreThreshold < 1)) throw new ArgumentException($"ScoreThreshold must be in [0, 1), got {ScoreThreshold}");
        if (!(NmsIoU >= 0 && NmsIoU <= 1)) throw new ArgumentException($"NmsIoU must be in [0, 1], got {NmsIoU}");
        if (MaxDetections < 1 || PreNmsTopK < 1) throw new ArgumentException($"MaxDetections and PreNmsTopK must be positive, got {MaxDetections} and {PreNmsTopK}");
        return this;
    }
}
