namespace MaeMl.Detection;

/// <summary>A ground-truth box in pixels (x0, y0 top-left; x1, y1 bottom-right, exclusive) with its class index.</summary>
public readonly record struct BoxAnnotation(float X0, float Y0, float X1, float Y1, int Label)
{
    /// <summary>Width in pixels (negative for a malformed box).</summary>
    public float Width => X1 - X0;
    /// <summary>Height in pixels (negative for a malformed box).</summary>
    public float Height => Y1 - Y0;
    /// <summary>Area in square pixels; 0 for an empty or malformed box.</summary>
    public float Area => Math.Max(0, Width) * Math.Max(0, Height);

    /// <summary>This box in an image mirrored left-right (image width <paramref name="imageWidth"/>).</summary>
    public BoxAnnotation FlipHorizontal(float imageWidth) => this with { X0 = imageWidth - X1, X1 = imageWidth - X0 };

    /// <summary>This box after the image is scaled by (sx, sy) and shifted by (dx, dy).</summary>
    public BoxAnnotation Transform(float sx, float sy, float dx = 0, float dy = 0) =>
        this with { X0 = X0 * sx + dx, Y0 = Y0 * sy + dy, X1 = X1 * sx + dx, Y1 = Y1 * sy + dy };
}

/// <summary>A predicted box in pixels with its class index and score.</summary>
public readonly record struct DetectedBox(float X0, float Y0, float X1, float Y1, int Label, float Score);
